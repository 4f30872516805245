"""File checksums recorded with results and converted weights, and the content fingerprints feature caches key files by."""

import hashlib
import os


def file_sha256(path):
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks.

    Example:

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile(delete=False) as handle:
    ...     _ = handle.write(b"abc")
    >>> file_sha256(handle.name)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_FINGERPRINTS = {}  # (path, size, mtime_ns, inode) -> fingerprint: each file read once per process while unchanged


def file_fingerprint(path):
    """`"<size>|<first 16 hex digits of the SHA-256>"` of a file's bytes: what a feature cache keys a file by.

    A copy of a file, or the same file touched or written again with the same
    bytes, has the same fingerprint, so cached features survive a corpus
    being copied or unpacked again (new modification times); any change of
    the bytes gives another. Within a process, a file whose size,
    modification time and inode are unchanged is not read again.

    Example:

    >>> import os, tempfile
    >>> with tempfile.NamedTemporaryFile(delete=False) as handle:
    ...     _ = handle.write(b"abc")
    >>> file_fingerprint(handle.name)
    '3|ba7816bf8f01cfea'
    >>> os.utime(handle.name, (0, 0))   # touched: the same bytes, the same fingerprint
    >>> file_fingerprint(handle.name)
    '3|ba7816bf8f01cfea'
    """
    stat = os.stat(path)
    key = (os.fspath(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = f"{stat.st_size}|{file_sha256(path)[:16]}"
    return _FINGERPRINTS[key]
