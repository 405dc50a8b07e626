"""Random ids from a pool of the kernel's bytes: UUIDs as uuid4's, few system calls, and a
forked child that never repeats its parent's ids."""

from __future__ import annotations

import os
import uuid

import pytest

from apps.core import random_ids


def test_ids_are_version_4_uuids_all_different_and_read_4_kib_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[int] = []
    real_urandom = os.urandom

    def urandom(size: int) -> bytes:
        reads.append(size)
        return real_urandom(size)

    monkeypatch.setattr(random_ids.os, "urandom", urandom)
    random_ids._pool.reset()

    ids = [random_ids.uuid4() for _ in range(1000)]

    assert len(set(ids)) == 1000
    assert {i.version for i in ids} == {4} and {i.variant for i in ids} == {uuid.RFC_4122}
    assert reads == [random_ids.POOL_BYTES] * 4  # 256 ids a read
    assert len(random_ids.token_bytes(16)) == 16


def test_a_forked_child_does_not_hand_out_its_parents_next_ids() -> None:
    random_ids.uuid4()  # the pool holds bytes the child inherits
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its next ids, to the parent
        try:
            os.write(writer, b"".join(random_ids.uuid4().bytes for _ in range(8)))
        finally:
            os._exit(0)
    os.close(writer)
    theirs = os.read(reader, 1024)
    os.close(reader)
    os.waitpid(child, 0)
    ours = b"".join(random_ids.uuid4().bytes for _ in range(8))

    assert len(theirs) == len(ours) == 128
    assert {theirs[i : i + 16] for i in range(0, 128, 16)}.isdisjoint(
        ours[i : i + 16] for i in range(0, 128, 16)
    )
