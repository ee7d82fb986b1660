"""IdempotencyStore contract (state/base.py): one owner per key cluster-wide, its answer kept."""

from __future__ import annotations

import asyncio

from ressonance.state.base import Claim, IdempotencyStore
from tests.contracts.conftest import MakeState


async def test_a_new_key_is_owned_by_whoever_claims_it(idempotency: IdempotencyStore) -> None:
    assert await idempotency.claim("1", "k1", "fp", 60) == Claim(True)


async def test_a_claimed_key_answers_its_fingerprint_pending_then_its_answer(
    idempotency: IdempotencyStore,
) -> None:
    await idempotency.claim("1", "k1", "fp", 60)

    pending = await idempotency.claim("1", "k1", "other", 60)
    await idempotency.complete("1", "k1", '{"ok":1}', 3600)
    done = await idempotency.claim("1", "k1", "fp", 60)

    assert pending == Claim(False, "fp", None)
    assert done == Claim(False, "fp", '{"ok":1}')


async def test_a_released_key_can_be_claimed_again(idempotency: IdempotencyStore) -> None:
    await idempotency.claim("1", "k1", "fp", 60)
    await idempotency.release("1", "k1")

    assert await idempotency.claim("1", "k1", "fp2", 60) == Claim(True)


async def test_completing_a_released_key_records_nothing(idempotency: IdempotencyStore) -> None:
    await idempotency.claim("1", "k1", "fp", 60)
    await idempotency.release("1", "k1")
    await idempotency.complete("1", "k1", "{}", 3600)

    assert await idempotency.claim("1", "k1", "fp", 60) == Claim(True)


async def test_keys_of_different_apps_are_apart(idempotency: IdempotencyStore) -> None:
    await idempotency.claim("1", "k1", "fp", 60)

    assert await idempotency.claim("2", "k1", "fp", 60) == Claim(True)


async def test_of_concurrent_claims_on_several_nodes_exactly_one_owns_the_key(
    make_state: MakeState,
) -> None:
    stores = [make_state(node_id=node).idempotency for node in ("a", "b", "c")]

    claims = await asyncio.gather(
        *(store.claim("1", "order-42", f"fp-{i}", 60) for i, store in enumerate(stores * 4))
    )

    assert sum(claim.owned for claim in claims) == 1
    owner = next(i for i, claim in enumerate(claims) if claim.owned)
    others = {claim.fingerprint for claim in claims if not claim.owned}
    assert others == {f"fp-{owner}"}
