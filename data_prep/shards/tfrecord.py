"""TFRecord framing without TensorFlow: masked CRC32C, writing, scanning, random access.

On-disk format of one record (TensorFlow's `tensorflow/core/lib/io/record_writer.cc`):

    uint64 length (little endian)
    uint32 masked_crc32c(length bytes)
    byte   data[length]
    uint32 masked_crc32c(data)

with masked_crc(x) = ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2**32) and CRC32C the
Castagnoli CRC (google-crc32c, hardware accelerated). Files written by TensorFlow's
TFRecordWriter (uncompressed) read with these functions and vice versa.

Files are opened through the path layer (`data_prep.infra.paths`), so they may be local or
on an object store (`gs://...`). Random access (`ShardFile`) uses `os.pread` on local files
and seek + read under a lock on remote file objects (epath/fsspec files support both).
"""
from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterator

import google_crc32c

from data_prep.infra import paths

_MASK_DELTA = 0xA282EAD8
HEADER_BYTES = 12  # uint64 length + uint32 crc
FOOTER_BYTES = 4  # uint32 crc of the data


class TFRecordCorruptError(IOError):
    """A record whose framing or checksum is wrong; names the file and byte offset."""


def masked_crc32c(data: bytes) -> int:
    """TensorFlow's masked CRC32C of `data` (uint32)."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    """Returns `data` framed as one TFRecord (header + data + footer)."""
    length = struct.pack("<Q", len(data))
    return (
        length
        + struct.pack("<I", masked_crc32c(length))
        + data
        + struct.pack("<I", masked_crc32c(data))
    )


def unframe_record(buf: bytes, path: str = "<bytes>", offset: int = 0,
                   verify_crc: bool = True) -> bytes:
    """Inverse of `frame_record` for exactly one framed record `buf` read at `offset`.

    Raises TFRecordCorruptError naming `path` and `offset` on any mismatch.
    """
    if len(buf) < HEADER_BYTES + FOOTER_BYTES:
        raise TFRecordCorruptError(f"{path}: truncated record at byte {offset}")
    (length,) = struct.unpack_from("<Q", buf, 0)
    if len(buf) != HEADER_BYTES + length + FOOTER_BYTES:
        raise TFRecordCorruptError(
            f"{path}: record at byte {offset} has length {length} but {len(buf)} framed bytes"
        )
    data = bytes(buf[HEADER_BYTES:HEADER_BYTES + length])
    if verify_crc:
        (len_crc,) = struct.unpack_from("<I", buf, 8)
        if len_crc != masked_crc32c(buf[:8]):
            raise TFRecordCorruptError(f"{path}: bad length checksum at byte {offset}")
        (data_crc,) = struct.unpack_from("<I", buf, HEADER_BYTES + length)
        if data_crc != masked_crc32c(data):
            raise TFRecordCorruptError(f"{path}: bad data checksum in record at byte {offset}")
    return data


class TFRecordWriter:
    """Appends framed records to a file; tracks (offset, framed length) of each record.

    Use as a context manager. `path` (local or remote) is written directly: callers wanting
    atomicity write through `paths.local_output(path)` (the shard writer does).
    """

    def __init__(self, path: str):
        self.path = path
        self._f = paths.open_file(path, "wb")
        self.offsets: list[int] = []
        self.lengths: list[int] = []
        self._pos = 0

    def write(self, data: bytes) -> int:
        """Writes one record; returns its byte offset in the file."""
        framed = frame_record(data)
        self._f.write(framed)
        offset = self._pos
        self.offsets.append(offset)
        self.lengths.append(len(framed))
        self._pos += len(framed)
        return offset

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            if paths.is_local(self.path):  # on disk before a rename makes it visible
                os.fsync(self._f.fileno())
            self._f.close()

    def __enter__(self) -> TFRecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def scan_tfrecord(path: str, verify_crc: bool = True) -> Iterator[tuple[int, bytes]]:
    """Yields (byte offset, data) of every record of `path` in order (CRC checked)."""
    size = file_size(path)
    with paths.open_file(path, "rb") as f:
        offset = 0
        while offset < size:
            header = f.read(HEADER_BYTES)
            if len(header) < HEADER_BYTES:
                raise TFRecordCorruptError(f"{path}: truncated header at byte {offset}")
            (length,) = struct.unpack_from("<Q", header, 0)
            if verify_crc:
                (len_crc,) = struct.unpack_from("<I", header, 8)
                if len_crc != masked_crc32c(header[:8]):
                    raise TFRecordCorruptError(f"{path}: bad length checksum at byte {offset}")
            if offset + HEADER_BYTES + length + FOOTER_BYTES > size:
                raise TFRecordCorruptError(
                    f"{path}: record at byte {offset} of length {length} runs past end of file"
                )
            rest = f.read(length + FOOTER_BYTES)
            data = rest[:length]
            if verify_crc:
                (data_crc,) = struct.unpack_from("<I", rest, length)
                if data_crc != masked_crc32c(data):
                    raise TFRecordCorruptError(
                        f"{path}: bad data checksum in record at byte {offset}"
                    )
            yield offset, data
            offset += HEADER_BYTES + length + FOOTER_BYTES


def file_size(path: str) -> int:
    """Size of a local or remote file [bytes]."""
    return int(paths.as_path(path).stat().length)


class ShardFile:
    """An open shard for positional reads from several threads (Grain's read threads).

    Local files are read with `os.pread` (no shared file position, no lock); remote file
    objects (gcsfs & co. have no file descriptor) with seek + read under a lock.
    """

    def __init__(self, path: str):
        self.path = path
        self._f = paths.open_file(path, "rb")
        self._fd = self._f.fileno() if paths.is_local(path) else None
        self._lock = threading.Lock()

    def pread(self, length: int, offset: int) -> bytes:
        if self._fd is not None:
            return os.pread(self._fd, length, offset)
        with self._lock:
            self._f.seek(offset)
            return self._f.read(length)

    def close(self) -> None:
        self._f.close()


def read_record_at(f: ShardFile, offset: int, framed_length: int,
                   verify_crc: bool = True) -> bytes:
    """Reads the record framed at `offset` (of `framed_length` bytes) from shard `f`."""
    buf = f.pread(framed_length, offset)
    if len(buf) != framed_length:
        raise TFRecordCorruptError(f"{f.path}: short read at byte {offset} (file truncated?)")
    return unframe_record(buf, f.path, offset, verify_crc)
