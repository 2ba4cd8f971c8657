"""The consumer's read-ahead buffer (``Fetched``): what the reader task puts while a batch is
applied, and what the next batch takes."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from salesops_common.inbox import Fetched, Records

pytestmark = pytest.mark.unit

P0 = TopicPartition("salesops.crm.v1", 0)
P1 = TopicPartition("salesops.crm.v1", 1)


def records(tp: TopicPartition, *offsets: int) -> list[ConsumerRecord[bytes, bytes]]:
    return [
        ConsumerRecord(tp.topic, tp.partition, o, 0, 0, b"k", b"v", None, 1, 1, []) for o in offsets
    ]


def offsets(taken: Records) -> dict[int, list[int]]:
    return {tp.partition: [r.offset for r in rs] for tp, rs in taken.items()}


async def test_reads_are_taken_together_each_partition_in_offset_order() -> None:
    fetched = Fetched(limit=100)
    fetched.put({P0: records(P0, 1, 2), P1: records(P1, 7)})
    fetched.put({P0: records(P0, 3)})
    fetched.put({})  # an empty read changes nothing
    assert fetched.count == 4
    assert offsets(await fetched.take(100, within=0)) == {0: [1, 2, 3], 1: [7]}
    assert fetched.count == 0
    assert await fetched.take(100, within=0.01) == {}


async def test_a_batch_takes_whole_reads_up_to_its_size_and_at_least_one() -> None:
    fetched = Fetched(limit=100)
    fetched.put({P0: records(P0, 1, 2, 3)})
    fetched.put({P0: records(P0, 4, 5)})
    fetched.put({P1: records(P1, 1)})
    assert offsets(await fetched.take(2, within=0)) == {0: [1, 2, 3]}  # larger than 2: alone
    assert offsets(await fetched.take(3, within=0)) == {0: [4, 5], 1: [1]}


async def test_the_reader_waits_for_room_once_the_limit_is_read() -> None:
    fetched = Fetched(limit=3)
    async with asyncio.timeout(1):
        await fetched.room()
    fetched.put({P0: records(P0, 1, 2, 3)})
    waiting = asyncio.create_task(fetched.room())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await fetched.take(10, within=0)
    async with asyncio.timeout(1):
        await waiting


async def test_a_taker_waiting_for_records_gets_them_when_they_are_read() -> None:
    fetched = Fetched(limit=10)
    taking = asyncio.create_task(fetched.take(10, within=5))
    await asyncio.sleep(0.01)
    assert not taking.done()
    fetched.put({P1: records(P1, 9)})
    assert offsets(await taking) == {1: [9]}


async def test_a_read_that_failed_is_raised_to_the_taker() -> None:
    fetched = Fetched(limit=10)
    fetched.put({P0: records(P0, 1)})
    fetched.fail(ConnectionError("broker gone"))
    with pytest.raises(ConnectionError, match="broker gone"):
        await fetched.take(10, within=0)
