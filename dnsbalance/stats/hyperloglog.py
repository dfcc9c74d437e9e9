"""A HyperLogLog sketch: counts distinct clients in 16 KiB, mergeable across workers and restarts."""
from __future__ import annotations

import base64
import hashlib
import math

PRECISION = 14  # 2^14 registers: about 0.8% standard error
REGISTERS = 1 << PRECISION


class HyperLogLog:
    def __init__(self, registers: bytes | None = None) -> None:
        self.registers = bytearray(registers) if registers else bytearray(REGISTERS)

    def add(self, item: bytes) -> None:
        value = int.from_bytes(hashlib.blake2b(item, digest_size=8).digest(), "big")
        index = value >> (64 - PRECISION)
        rest = value & ((1 << (64 - PRECISION)) - 1)
        rank = (64 - PRECISION) - rest.bit_length() + 1
        if rank > self.registers[index]:
            self.registers[index] = rank

    def merge(self, other: "HyperLogLog") -> "HyperLogLog":
        return HyperLogLog(bytes(max(a, b) for a, b in zip(self.registers, other.registers)))

    def count(self) -> int:
        alpha = 0.7213 / (1 + 1.079 / REGISTERS)
        estimate = alpha * REGISTERS * REGISTERS / sum(2.0 ** -r for r in self.registers)
        zeros = self.registers.count(0)
        if estimate <= 2.5 * REGISTERS and zeros:
            estimate = REGISTERS * math.log(REGISTERS / zeros)  # linear counting for small sets
        return round(estimate)

    def dump(self) -> str:
        return base64.b64encode(bytes(self.registers)).decode()

    @classmethod
    def load(cls, text: str) -> "HyperLogLog":
        raw = base64.b64decode(text)
        return cls(raw if len(raw) == REGISTERS else None)
