"""Video decoding: the only importer of torchcodec and PyAV.

PyAV (bundled FFmpeg; the "auto" choice on the CPU) decodes once over the union of a video's clip
indices (repeated sampling, MAE-ST §4) and feeds the decoder only the packets it needs: an H.264
picture that no other picture references (``nal_ref_idc`` 0, about half of the frames of x264's
default B-pyramid) is skipped unless it is a requested frame, which leaves every decoded frame
bit-identical and makes PyAV the faster CPU decoder here (``maest bench-data``). torchcodec 0.13
(``seek_mode="exact"``, all indices in one ``get_frames_at`` call) decodes every frame up to the last
one asked for; it gives the same frames (``tests/data/test_decode.py``) and is the GPU path.
Both give RGB uint8 frames (N, C, H, W) in channels-last memory (as decoders write pixels; torch's
uint8 resize is about 3x faster on it than on planar frames) and use one thread per decoder, since
DataLoader workers supply the parallelism. Both decode from a file or from bytes in memory (a sample
of a tar shard); torchcodec also on a CUDA GPU (``device="cuda"``, see :func:`check_decode_device`).

Container frame counts can overstate what is decodable (a cut-off last GOP, a wrong ``nb_frames``).
When a request fails past the real end, the video's ``num_frames`` is lowered to the last frame that
decodes and the request is clamped to it, as long as the shortfall is small (``END_SLACK``); a bigger
gap is a truncated file and raises :class:`VideoDecodeError`.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

BACKENDS = ("auto", "torchcodec", "pyav")
# how many frames the metadata may overstate before the file counts as truncated: max(4, 5%)
END_SLACK = (4, 0.05)


class VideoDecodeError(RuntimeError):
    """A video is missing, unreadable, truncated or has no frames."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"cannot decode {path}: {reason}")
        self.path = str(path)
        self.reason = reason


_warned: set[str] = set()


def warn_once(err: VideoDecodeError, what: str = "video") -> None:
    """Log that a training dataset skips an unreadable ``what`` (a video file, a shard's sample),
    once per path and process."""
    if err.path not in _warned:
        _warned.add(err.path)
        logging.getLogger("maest.data").warning("skipping unreadable %s %s (%s)", what, err.path, err.reason)


@functools.cache
def torchcodec_available() -> bool:
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except Exception:  # ImportError, or OSError when FFmpeg's shared libraries are missing
        return False
    return True


class Video:
    """An open video. ``get_frames(indices)`` -> uint8 (N, C, H, W), in the order asked."""

    path: str
    device: str = "cpu"  # where frames are decoded; a GPU's own failures are not the video's (device_failure)
    num_frames: int
    fps: float
    height: int
    width: int

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        """uint8 (N, C, H, W) RGB frames at ``indices`` (any order, repeats allowed).

        Raises:
            IndexError: an index is outside [0, num_frames).
            VideoDecodeError: the frames cannot be decoded (see the module note on short files).
        """
        idx = self._check(indices)
        try:
            return self._decode(idx)
        except Exception as e:
            if device_failure(e, self.device, self.path):
                raise
            err = e
        last = self._last_decodable(max(idx))
        limit = max(END_SLACK[0], int(END_SLACK[1] * self.num_frames))
        if last is None or last >= max(idx) or self.num_frames - 1 - last > limit:
            # not a slightly short tail: a truncated or damaged file
            raise VideoDecodeError(self.path, f"truncated or corrupt ({_reason(err)})") from err
        self.num_frames = last + 1  # metadata overstated the count; later requests see the real one
        try:
            return self._decode([min(i, last) for i in idx])
        except Exception as e:
            if device_failure(e, self.device, self.path):
                raise
            raise VideoDecodeError(self.path, f"truncated or corrupt ({_reason(e)})") from e

    def _decode(self, indices: list[int]) -> torch.Tensor:
        raise NotImplementedError

    def _last_decodable(self, upper: int) -> int | None:
        """The highest index <= ``upper`` that decodes (binary search; None if frame 0 fails)."""
        if not self._decodes(0):
            return None
        lo, hi = 0, upper  # invariant: lo decodes; the answer is in [lo, hi]
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if self._decodes(mid) else (lo, mid - 1)
        return lo

    def _decodes(self, i: int) -> bool:
        try:
            self._decode([i])
        except Exception:
            return False
        return True

    def _check(self, indices: Sequence[int]) -> list[int]:
        idx = [int(i) for i in indices]
        bad = [i for i in idx if not 0 <= i < self.num_frames]
        if bad:
            raise IndexError(f"frame indices {bad[:5]} outside [0, {self.num_frames}) for {self.path}")
        return idx


class TorchcodecVideo(Video):
    def __init__(self, path: str, data: bytes | None = None, device: str = "cpu") -> None:
        from torchcodec.decoders import VideoDecoder

        self.path, self.device = path, device
        self._dec = VideoDecoder(path if data is None else data, seek_mode="exact", num_ffmpeg_threads=1,
                                 dimension_order="NHWC", device=device)
        meta = self._dec.metadata
        self.num_frames = int(meta.num_frames or 0)
        self.fps = float(meta.average_fps or 0.0)
        self.height, self.width = int(meta.height), int(meta.width)

    def _decode(self, indices: list[int]) -> torch.Tensor:
        return self._dec.get_frames_at(indices=indices).data.permute(0, 3, 1, 2)  # channels-last NCHW


class PyAVVideo(Video):
    """PyAV decoding with torchcodec's frame numbering (``seek_mode="exact"``): frame i is the i-th
    presentation timestamp of the stream, read from its packets without decoding. Timestamps, not the
    frame rate, locate a frame, so variable-frame-rate files decode like constant-rate ones."""

    def __init__(self, path: str, data: bytes | None = None, motion_vectors: bool = False) -> None:
        import av

        self.path = path
        # motion vectors of decoded frames (FFmpeg's export_mvs side data), by frame index; None: the frame has none
        self.motion_vectors = motion_vectors
        self.vectors: dict[int, np.ndarray | None] = {}
        self._container = av.open(path if data is None else io.BytesIO(data))
        if not self._container.streams.video:
            raise VideoDecodeError(path, "no video stream")
        stream = self._container.streams.video[0]
        stream.thread_count = 1
        if motion_vectors:
            from av.sidedata.sidedata import Type

            stream.codec_context.options = {"flags2": "+export_mvs"}
            self._mv_type = Type.MOTION_VECTORS  # the enum itself: looking a name up costs more than the read
        self._stream = stream
        self.fps = float(stream.average_rate or stream.guessed_rate or 0.0)
        self.height, self.width = stream.codec_context.height, stream.codec_context.width
        # the presentation timestamps of all frames, in order (a demux pass: no decoding); a packet an edit
        # list cuts away (is_discard: decoded as a reference, never shown) is not a frame, as for torchcodec
        nal_len = _avcc_nal_length(stream)
        packets = [(p.pts, nal_len > 0 and _h264_unreferenced(p, nal_len)) for p in self._container.demux(stream)
                   if p.pts is not None and p.size and not getattr(p, "is_discard", False)]
        self._pts = sorted(pts for pts, _ in packets)
        self._skippable = {pts for pts, unref in packets if unref}  # pictures nothing else refers to
        self._index = {pts: i for i, pts in enumerate(self._pts)}
        self._container.seek(0)
        if len(self._index) != len(self._pts):  # repeated timestamps: number frames in decoding order
            self._pts, self._index = [], {}
        n = len(self._pts) or stream.frames
        if not n and stream.duration and stream.time_base and self.fps:
            n = int(stream.duration * stream.time_base * self.fps)
        self.num_frames = int(n or 0)
        if self.num_frames == 0:  # no count in the container: count by decoding once
            self.num_frames = sum(1 for _ in self._container.decode(stream))
            self._container.seek(0)

    def _decode(self, idx: list[int]) -> torch.Tensor:
        wanted = set(idx)
        first, last = min(idx), max(idx)
        stream = self._stream
        if self._pts:
            # seek to the keyframe at or before the first wanted frame; each decoded frame's index comes
            # from its timestamp, so where the seek lands does not matter
            self._container.seek(self._pts[first], stream=stream, backward=True, any_frame=False)
        else:  # no usable timestamps: count frames from the start
            self._container.seek(stream.start_time or 0, stream=stream, backward=True, any_frame=False)
        got: dict[int, torch.Tensor] = {}
        for n, frame in enumerate(self._frames(stream, wanted)):
            i = self._index.get(frame.pts, -1) if self._pts else n
            if i in wanted and i not in got:
                got[i] = pyav_rgb24(frame)
                if self.motion_vectors:
                    mv = frame.side_data.get(self._mv_type)
                    self.vectors[i] = None if mv is None else mv.to_ndarray()
            if i >= last:
                break
        missing = wanted - got.keys()
        if missing:
            raise RuntimeError(f"frames {sorted(missing)[:5]} not found in the stream")
        return torch.from_numpy(np.stack([got[i] for i in idx])).permute(0, 3, 1, 2)  # channels-last NCHW

    def _frames(self, stream, wanted: set[int]):
        """Decoded frames from the current position; unreferenced pictures not in ``wanted`` are not
        decoded (nothing else depends on them, so the other frames come out bit-identical)."""
        if not self._skippable:
            yield from self._container.decode(stream)
            return
        for packet in self._container.demux(stream):
            if packet.pts in self._skippable and self._index[packet.pts] not in wanted:
                continue
            yield from packet.decode()

    def decode_every_frame(self) -> None:
        """Decode every picture from now on, the unreferenced ones not asked for too (as maest did before
        issue 15; ``maest bench-data`` times both). The frames returned are the same either way."""
        self._skippable = set()

    def close(self) -> None:
        self._container.close()


_CONVERTERS = threading.local()


def pyav_rgb24(frame) -> np.ndarray:
    """A frame as RGB (H, W, 3) uint8, the same bytes as ``frame.to_ndarray(format="rgb24")``. That call
    builds a new swscale context per frame, with a pool of threads, which costs 10-50x the conversion
    itself on small frames; this one converter per thread keeps its context (FFmpeg rebuilds it when a
    frame's size or format differs) and converts on the calling thread, as decoding does."""
    conv = getattr(_CONVERTERS, "rgb", None)
    if conv is None:
        from av.video.reformatter import VideoReformatter

        conv = _CONVERTERS.rgb = VideoReformatter()
    return conv.reformat(frame, format="rgb24", threads=1).to_ndarray()


def _avcc_nal_length(stream) -> int:
    """The NAL length-prefix size of an H.264 stream stored in ISO/MP4/MKV (avcC) form; 0 otherwise."""
    ctx = stream.codec_context
    extra = ctx.extradata or b""
    return (extra[4] & 3) + 1 if ctx.name == "h264" and len(extra) > 4 and extra[0] == 1 else 0


def _h264_unreferenced(packet, nal_len: int) -> bool:
    """True when every slice of the packet has ``nal_ref_idc`` 0: no other picture is predicted from it."""
    data = bytes(packet)
    i, slices = 0, 0
    while i + nal_len < len(data):
        size = int.from_bytes(data[i:i + nal_len], "big")
        header = data[i + nal_len]
        if header & 0x1F in (1, 5):  # coded slice (non-IDR / IDR)
            slices += 1
            if header & 0x60:
                return False
        i += nal_len + size
    return slices > 0


def open_video(path: str | Path, backend: str = "auto", data: bytes | None = None, device: str = "cpu",
               motion_vectors: bool = False) -> Video:
    """Open ``path`` with ``backend`` ("auto": PyAV on the CPU, since skipping the pictures it does not
    need makes it the faster decoder there (``maest bench-data``; frames are identical); torchcodec
    for ``device="cuda"``).

    Args:
        data: the encoded video in memory (a shard sample); ``path`` then only names it in messages.
        device: "cuda" decodes on the GPU with torchcodec (see :func:`check_decode_device`).
        motion_vectors: PyAV also exports each decoded frame's motion vectors (``video.vectors``);
            torchcodec offers none, so this needs PyAV.

    Raises:
        VideoDecodeError: the file is missing, unreadable or has no frames.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown video backend {backend!r}; choose one of {BACKENDS}")
    p = Path(path) if data is None else path
    if data is None and not p.is_file():
        raise VideoDecodeError(p, "file does not exist")
    if (len(data) if data is not None else p.stat().st_size) == 0:
        raise VideoDecodeError(p, "file is empty")
    if device != "cpu":
        check_decode_device(device)
        backend = "torchcodec"
    use_tc = backend == "torchcodec"
    if motion_vectors and use_tc:
        raise ValueError("data.motion=codec reads motion vectors through PyAV, and torchcodec offers none: set "
                         "data.backend=pyav (or auto) and data.decode_device=cpu")
    if backend == "torchcodec" and not torchcodec_available():
        raise RuntimeError("backend 'torchcodec' requested but it does not load (pip install torchcodec==0.13.0 "
                           "and Debian's ffmpeg); use backend 'pyav' or 'auto'")
    try:
        video = TorchcodecVideo(str(p), data, device) if use_tc else PyAVVideo(str(p), data, motion_vectors)
    except VideoDecodeError:
        raise
    except Exception as e:  # decoders raise RuntimeError, ValueError, av.error.*, ...
        if device_failure(e, device, str(p)):
            raise
        raise VideoDecodeError(p, _reason(e)) from e
    if video.num_frames <= 0 or not math.isfinite(video.fps):
        raise VideoDecodeError(p, "no decodable frames")
    return video


DECODE_DEVICES = ("cpu", "cuda")


def check_decode_device(device: str) -> None:
    """Refuse, in one line, a ``data.decode_device`` this machine cannot decode on.

    Raises:
        ValueError: not "cpu" or "cuda" (or "cuda:N").
        RuntimeError: "cuda" without a CUDA GPU, without torchcodec, or with a torchcodec build
            that has no CUDA decoder.
    """
    if device == "cpu":
        return
    if device != "cuda" and not re.fullmatch(r"cuda:\d+", device):
        raise ValueError(f"data.decode_device={device!r} is not one of {DECODE_DEVICES}")
    if not torch.cuda.is_available():
        raise RuntimeError(f"data.decode_device={device} needs a CUDA GPU, and torch {torch.__version__} sees none "
                           "on this machine; use data.decode_device=cpu")
    if not torchcodec_available():
        raise RuntimeError(f"data.decode_device={device} decodes with torchcodec, which does not load here; "
                           "pip install torchcodec (a CUDA build) or use data.decode_device=cpu")
    if not _torchcodec_cuda(device):
        from importlib import metadata

        try:
            version = metadata.version("torchcodec")
        except metadata.PackageNotFoundError:  # a build loaded from elsewhere: its name still says what to fix
            version = "(version unknown)"
        raise RuntimeError(f"data.decode_device={device}: torchcodec {version} here has no CUDA "
                           "decoder (a CPU build); install torchcodec's CUDA build for your torch "
                           "(https://github.com/pytorch/torchcodec#installing-cuda-enabled-torchcodec) "
                           "or use data.decode_device=cpu")


@functools.cache
def _torchcodec_cuda(device: str) -> bool:
    """Whether torchcodec decodes a tiny in-memory H.264 clip on ``device``."""
    import tempfile

    import numpy as np

    from maest.data.synthetic import encode_mp4

    try:
        from torchcodec.decoders import VideoDecoder

        with tempfile.TemporaryDirectory() as tmp:
            clip = encode_mp4(np.zeros((2, 64, 64, 3), np.uint8), Path(tmp) / "probe.mp4")
            VideoDecoder(str(clip), device=device).get_frame_at(0)
    except Exception:
        return False
    return True


def read_frames(video: Video, indices: Sequence[int]) -> torch.Tensor:
    """``video.get_frames`` with decoder failures turned into :class:`VideoDecodeError`."""
    try:
        return video.get_frames(indices)
    except VideoDecodeError:
        raise
    except Exception as e:
        if device_failure(e, video.device, video.path):
            raise
        raise VideoDecodeError(video.path, _reason(e)) from e


_GPU_FAILURE = re.compile(r"cuda|nvdec|cuvid|out of memory", re.IGNORECASE)


def device_failure(e: BaseException, device: str, path: str = "") -> bool:
    """Whether ``e``, raised while decoding on ``device``, is a GPU failing (a CUDA error, out of memory,
    no NVDEC, CUDA in a forked loader worker) rather than the video. Such an error is raised as it is, and
    stops the job; a broken video becomes a :class:`VideoDecodeError` (skipped in training, listed as
    failed by ``maest test``). Never true for CPU decoding."""
    if device == "cpu":
        return False
    if isinstance(e, torch.cuda.OutOfMemoryError):
        return True
    return bool(_GPU_FAILURE.search(f"{type(e).__name__}: {str(e).replace(path, '') if path else e}"))


def _reason(e: Exception) -> str:
    text = str(e).splitlines()[0][:200] if str(e) else ""
    return f"{type(e).__name__}: {text}"
