"""The digest of a dataset: the sum, modulo 2**128, of a 128-bit BLAKE2b digest of
each packed record.  A sum does not depend on the order of the rows (an SQL query
without ORDER BY may return them in any order), and can be updated by adding and
subtracting records, which the incremental mode does."""

from __future__ import annotations

from hashlib import blake2b

__all__ = ["DatasetDigest", "record_digest"]

_MODULUS = 1 << 128


def record_digest(packed: bytes) -> int:
    return int.from_bytes(blake2b(packed, digest_size=16).digest(), "big")


class DatasetDigest:
    __slots__ = ("total", "count")

    def __init__(self) -> None:
        self.total = 0
        self.count = 0

    def add(self, value: int) -> None:
        self.total = (self.total + value) % _MODULUS
        self.count += 1

    def add_record(self, packed: bytes) -> None:
        self.add(record_digest(packed))

    def hexdigest(self) -> str:
        """Includes the count, so that an empty dataset and one whose digests sum to 0 differ."""
        return f"{self.count}:{self.total:032x}"
