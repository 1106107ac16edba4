"""Choosing a FAISS index for a memory budget, from the bytes each index type keeps per vector.

The estimate of a served dense index is its FAISS structure, plus the passages' line offsets,
plus a fixed allowance for the encoder and the process. Types are tried most accurate first:
Flat, HNSW32, SQ8, then IVF-PQ with the largest code that fits. HNSW32 is larger than Flat, so a
budget alone never picks it; ``fast`` drops the types that scan every vector per query (Flat,
SQ8) and tries HNSW32, HNSW32 over SQ8 codes, then IVF-PQ. ``benchmarks/index_memory.py``
measures the same arithmetic against resident memory.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

GiB = 1 << 30
# Besides the index: the encoder's weights (E5-base: 0.4 GiB), torch and Python.
PROCESS_OVERHEAD = GiB
# The byte offset and length of each passage's line, kept to read hits from the corpus.
PASSAGE_BYTES = 16
HNSW_M = 32
# FAISS's k-means wants about 39 training points per centroid, for both IVF and PQ.
POINTS_PER_CENTROID = 39

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": GiB, "T": 1 << 40}


class BudgetError(ValueError):
    """No index type fits the memory budget."""


def parse_size(text: str) -> int:
    """``16G``, ``512M``, ``1.5T``, ``16GiB`` or a plain byte count; units are binary."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, flags=re.IGNORECASE)
    if not m:
        raise ValueError(f"memory size {text!r}: expected a number with an optional K/M/G/T unit")
    value = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if value < 1:
        raise ValueError(f"memory size {text!r} must be at least one byte")
    return int(value)


def format_size(num_bytes: float) -> str:
    for unit, scale in (("TiB", 1 << 40), ("GiB", GiB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.1f} {unit}"
    return f"{int(num_bytes)} B"


@dataclass(frozen=True)
class IndexPlan:
    factory: str
    num_vectors: int
    dimension: int
    bytes_per_vector: float
    fixed_bytes: int = 0  # trained parameters: coarse centroids, PQ codebooks, SQ ranges
    search_params: dict[str, int] = field(default_factory=dict)  # efSearch / nprobe

    @property
    def index_bytes(self) -> int:
        return int(self.num_vectors * self.bytes_per_vector + self.fixed_bytes)

    @property
    def total_bytes(self) -> int:
        return self.index_bytes + self.num_vectors * PASSAGE_BYTES + PROCESS_OVERHEAD

    def describe(self) -> str:
        return (
            f"{self.factory}: {format_size(self.total_bytes)} "
            f"({self.bytes_per_vector:g} B/vector x {self.num_vectors:,} = "
            f"{format_size(self.index_bytes)} index, plus passage offsets and "
            f"{format_size(PROCESS_OVERHEAD)} for the encoder and process)"
        )


def ivf_lists(n: int) -> int:
    """Coarse clusters: the power of two nearest 4*sqrt(n), with enough points to train each."""
    target = 4 * math.sqrt(n)
    nlist = 1 << max(0, round(math.log2(target)))
    return max(1, min(nlist, n // POINTS_PER_CENTROID))


def pq_bits(n: int) -> int:
    """8 bits per sub-quantizer (256 centroids) when there are enough points to train them."""
    return max(1, min(8, int(math.log2(max(2, n // POINTS_PER_CENTROID)))))


def _hnsw_bytes(d: int, m: int) -> float:
    # Level 0 keeps 2M neighbour ids (int32); the upper levels, a 1/M share of nodes with M
    # neighbours each, average 4 more; then a level and an offset per node.
    return 4 * d + 8 * m + 4 + 12


def estimate(factory: str, n: int, d: int) -> IndexPlan | None:
    """The plan for the factory strings the planner emits (and their variants); None for others."""
    f = factory.replace(" ", "")
    if f == "Flat":
        return IndexPlan(f, n, d, 4 * d)
    if m := re.fullmatch(r"HNSW(\d+)(?:,Flat)?", f):
        return IndexPlan(f, n, d, _hnsw_bytes(d, int(m.group(1))), search_params={"efSearch": 128})
    if m := re.fullmatch(r"HNSW(\d+)_SQ8", f):
        graph = _hnsw_bytes(d, int(m.group(1))) - 4 * d
        return IndexPlan(f, n, d, d + graph, 2 * d * 4, search_params={"efSearch": 128})
    if f == "SQ8":
        return IndexPlan(f, n, d, d, fixed_bytes=2 * d * 4)
    if m := re.fullmatch(r"IVF(\d+),PQ(\d+)(?:x(\d+))?", f):
        nlist, pq_m, bits = int(m.group(1)), int(m.group(2)), int(m.group(3) or 8)
        return IndexPlan(
            f,
            n,
            d,
            pq_m * bits / 8 + 8,  # the code and the 64-bit id in its inverted list
            fixed_bytes=nlist * d * 4 + (1 << bits) * d * 4,
            search_params={"nprobe": min(nlist, max(16, nlist // 64))},
        )
    return None


def candidates(n: int, d: int, fast: bool = False) -> list[IndexPlan]:
    """Index types for ``n`` vectors of dimension ``d``, most accurate first; ``fast``: only those
    that do not scan every vector per query."""
    if fast:
        plans = [estimate(f"HNSW{HNSW_M}", n, d), estimate(f"HNSW{HNSW_M}_SQ8", n, d)]
    else:
        plans = [estimate("Flat", n, d), estimate(f"HNSW{HNSW_M}", n, d), estimate("SQ8", n, d)]
    nlist, bits = ivf_lists(n), pq_bits(n)
    suffix = "" if bits == 8 else f"x{bits}"
    # Sub-vectors of 2 to 32 dimensions (beyond 32, one byte cannot describe one), longest
    # codes first.
    sizes = (m for m in range(max(1, d // 32), d // 2 + 1) if d % m == 0 and d // m <= 32)
    for pq_m in sorted(sizes, reverse=True):
        plans.append(estimate(f"IVF{nlist},PQ{pq_m}{suffix}", n, d))
    return [p for p in plans if p is not None]


def plan_for_budget(
    n: int, d: int, max_ram: int, fast: bool = False
) -> tuple[IndexPlan, list[str]]:
    """The most accurate index type whose estimate fits ``max_ram``, and why (one line each)."""
    why = []
    for plan in candidates(n, d, fast):
        if plan.total_bytes <= max_ram:
            why.append(f"chose {plan.describe()}, within --max-ram {format_size(max_ram)}")
            return plan, why
        # Of the IVF-PQ code sizes, only the largest is worth a line.
        if not (plan.factory.startswith("IVF") and why and why[-1].startswith("IVF")):
            why.append(f"{plan.describe()} exceeds --max-ram {format_size(max_ram)}")
    smallest = min(candidates(n, d, fast), key=lambda p: p.total_bytes)
    raise BudgetError(
        f"no index of {n:,} vectors of dimension {d} fits --max-ram {format_size(max_ram)}: the "
        f"smallest, {smallest.describe()}"
    )
