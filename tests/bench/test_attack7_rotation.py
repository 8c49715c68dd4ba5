"""The rotation of replicas against the reversal of the round's order.

``schedule`` runs odd rounds backwards, so the slices a ratio divides swap places from one
round to the next and a steady drift across a round cancels over two rounds.  Round ``r``
was measured by replica ``r mod K``; with ``K`` even, a replica's rounds were then all even
or all odd: each process always measures in the same place of the round (native's replica 0
always first, sgx/raw's replica 0 always last), so a process's level and its place in the
round are one and the same, and the first stage of the bootstrap, which draws replica
slots, draws the order effect with them (a resample drawing slot 0 twice has every round
forwards: the drift no longer cancels in it)."""

from __future__ import annotations

import pytest

from pylibos.bench import Settings, parse_config_list, run
from pylibos.bench._resample import round_slots


@pytest.mark.parametrize("k", [2, 3])
def test_every_replica_slot_measures_in_both_orders(k: int) -> None:
    configs = parse_config_list("native,direct/eventfd")
    seen: list[str] = []
    rounds = 2 * k
    run(
        configs,
        Settings(duration=0.01 * rounds, batch=2, rounds=rounds, processes=k),
        on_slice=seen.append,
    )
    assert len(seen) == 2 * rounds, seen
    by_round = [tuple(seen[2 * r : 2 * r + 2]) for r in range(rounds)]
    slots = [int(s) for s in round_slots(range(rounds), k)]
    for slot in range(k):
        own = [r for r in range(rounds) if slots[r] == slot]
        orders = {by_round[r] for r in own}
        assert len(orders) == 2, (
            f"replica slot {slot} of {k} measured its configurations in one order only: "
            f"{orders} (rounds {own})"
        )
