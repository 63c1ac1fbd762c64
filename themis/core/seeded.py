"""A small seeded pseudo-random generator for the core's resampling statistics.

The core may not use ambient randomness (`random` is forbidden there): every draw comes from a
`SeededGenerator` built from an explicit seed, so a bootstrap or a permutation test gives the
same numbers on every machine and in every Python version. The generator is SplitMix64
(Steele, Lea & Flood 2014): 64-bit state, passes BigCrush, and is a few lines of integer
arithmetic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

_MASK: Final = (1 << 64) - 1
_GOLDEN: Final = 0x9E3779B97F4A7C15


class SeededGenerator:
    """SplitMix64: `next_u64` yields the same sequence for the same seed, everywhere."""

    def __init__(self, seed: int) -> None:
        self._state = seed & _MASK

    def next_u64(self) -> int:
        """The next 64 uniformly distributed bits."""
        self._state = (self._state + _GOLDEN) & _MASK
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def block(self, count: int) -> npt.NDArray[np.uint64]:
        """The next `count` draws of `next_u64` at once, as a numpy array (same values, same
        order, and the generator advanced past them)."""
        import numpy as np

        z = np.arange(1, count + 1, dtype=np.uint64)
        z *= np.uint64(_GOLDEN)  # uint64 arithmetic wraps: modulo 2**64
        z += np.uint64(self._state)
        shifted = z >> np.uint64(30)
        z ^= shifted
        z *= np.uint64(0xBF58476D1CE4E5B9)
        np.right_shift(z, np.uint64(27), out=shifted)
        z ^= shifted
        z *= np.uint64(0x94D049BB133111EB)
        np.right_shift(z, np.uint64(31), out=shifted)
        z ^= shifted
        self._state = (self._state + count * _GOLDEN) & _MASK
        return z

    def below(self, bound: int) -> int:
        """A uniform integer in [0, bound), without modulo bias (Lemire's rejection)."""
        if bound <= 0:
            raise ValueError("bound must be positive")
        threshold = ((1 << 64) - bound) % bound
        while True:
            product = self.next_u64() * bound
            if product & _MASK >= threshold:
                return product >> 64

    def indices(self, count: int, bound: int) -> list[int]:
        """`count` integers in [0, bound), two per 64-bit draw (bound < 2**32), by Lemire's
        multiply-shift without rejection: each value's probability is off by at most
        bound / 2**32 (2e-6 for 10,000 cases), which no resampling statistic can see; fast,
        because it is one tight loop."""
        if not 0 < bound < 1 << 32:
            raise ValueError("bound must be in [1, 2**32)")
        state = self._state
        result: list[int] = []
        append = result.append
        for _ in range((count + 1) // 2):
            state = (state + _GOLDEN) & _MASK
            z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
            z ^= z >> 31
            append(((z & 0xFFFFFFFF) * bound) >> 32)
            append(((z >> 32) * bound) >> 32)
        self._state = state
        del result[count:]
        return result

    def bits(self, count: int) -> int:
        """An integer of `count` independent fair random bits."""
        value = 0
        for shift in range(0, count, 64):
            value |= self.next_u64() << shift
        return value & ((1 << count) - 1)

    def signs(self, count: int) -> list[int]:
        """`count` independent fair signs (+1 or -1), 64 per draw."""
        result: list[int] = []
        while len(result) < count:
            bits = self.next_u64()
            take = min(64, count - len(result))
            result.extend(1 - 2 * ((bits >> shift) & 1) for shift in range(take))
        return result
