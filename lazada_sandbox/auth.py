"""The token API the sandbox serves: ``/auth/token/refresh`` (§8)."""

from __future__ import annotations

from lazada_sandbox.call import Call
from lazada_sandbox.envelope import TopLevel


def refresh(call: Call) -> TopLevel:
    """Rotate both tokens; the answer's fields sit at the top level, without ``data``."""
    seller, refresh_left = call.state.rotate_tokens(call.seller)
    info = {
        "country": seller.country.lower(),
        "seller_id": seller.seller_id,
        "user_id": seller.user_id,
        "short_code": seller.short_code,
    }
    return TopLevel(
        {
            "access_token": seller.access_token,
            "refresh_token": seller.refresh_token,
            "expires_in": seller.access_expires_in,
            "refresh_expires_in": int(refresh_left),
            "country": seller.country.lower(),
            "account_id": seller.user_id,
            "account": seller.account,
            "account_platform": "seller_center",
            "country_user_info_list": [info],
        }
    )
