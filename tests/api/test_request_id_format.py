"""A generated request id is what `uuid.uuid4().hex` makes: 32 lower-case hex digits of a random version-4 UUID."""

from __future__ import annotations

import uuid

from api.middleware import new_request_id


def test_a_generated_request_id_is_a_random_uuid4_in_hex() -> None:
    ids = [new_request_id() for _ in range(2000)]

    for rid in ids:
        parsed = uuid.UUID(hex=rid)
        assert parsed.hex == rid  # 32 lower-case hex digits, nothing else
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
    assert len(set(ids)) == len(ids)
    # Every one of the 122 random bits varies (a stuck bit would be set, or clear, in all 2,000).
    random_bits = [i for i in range(128) if i not in (48, 49, 50, 51, 64, 65)]  # version nibble, variant bits
    for bit in random_bits:
        assert len({int(rid, 16) >> (127 - bit) & 1 for rid in ids}) == 2, bit
