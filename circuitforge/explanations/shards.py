"""Which chunks of a sweep each process takes (the sampler and the module agree through it)."""


def shard(n_chunks: int, rank: int, world_size: int) -> range:
    """The chunks process `rank` of `world_size` takes: every world_size-th, none twice, no
    padding (a neuron is explained once)."""
    return range(rank, n_chunks, world_size)
