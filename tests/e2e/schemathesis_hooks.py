"""Schemathesis hooks (loaded through `SCHEMATHESIS_HOOKS`): how to generate an SDP offer.

The OpenAPI document describes offers as `format: sdp` strings; JSON Schema cannot say what
makes an offer usable, so valid ones are drawn from real browsers' and aiortc's offers.
"""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

from tests.unit.sdp_samples import AIORTC_OFFER, CHROME_OFFER

OFFERS = st.sampled_from([AIORTC_OFFER, CHROME_OFFER])

schemathesis.openapi.format("sdp", OFFERS)


@schemathesis.serializer("application/sdp")
def sdp_body(ctx: schemathesis.SerializationContext, value: object) -> bytes:
    """An SDP body on the wire: the text as UTF-8 (bytes pass through)."""
    return value if isinstance(value, bytes) else str(value).encode()
