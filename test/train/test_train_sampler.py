"""The resumable shard sampler: DistributedSampler partitioning, seeds, mid-epoch start."""

from __future__ import annotations

from segnode.train.sampler import ShardSampler


def test_shards_partition_the_epoch_and_match_one_process() -> None:
    single = ShardSampler(10, seed=3)
    ranks = [ShardSampler(10, rank=r, world_size=2, seed=3) for r in range(2)]
    order = single.shard()
    assert sorted(order) == list(range(10))
    assert ranks[0].shard() == order[0::2] and ranks[1].shard() == order[1::2]
    assert dict(single)[order[3]] == dict(ranks[1])[order[3]]  # same augmentation seed


def test_epochs_reshuffle_and_start_resumes() -> None:
    sampler = ShardSampler(12, seed=0)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert [i for i, _ in first] != [i for i, _ in second]
    sampler.set_epoch(1, start=5)
    assert list(sampler) == second[5:] and len(sampler) == 7


def test_limit_and_uneven_sizes() -> None:
    sampler = ShardSampler(11, rank=1, world_size=2, limit=7, shuffle=False)
    assert sampler.shard() == [1, 3, 5] and len(sampler) == 3
