"""maest: masked autoencoders as spatiotemporal learners (Feichtenhofer et al., arXiv:2205.09113)."""

__version__ = "0.1.0"
