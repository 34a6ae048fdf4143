"""JSON shapes of orders and items as the real gateway sends them (numbers for ids)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lazada_sandbox.model import Item, Order, country_tz, format_time


def ident(value: str, as_string: bool) -> int | str:
    """Ids go out as JSON numbers unless the scenario asks for strings (§20)."""
    return value if as_string or not value.isdigit() else int(value)


def spaced_time(epoch_s: float, country: str) -> str:
    """``2018-03-26 16:31:21 +0800``: the form item payloads use."""
    return datetime.fromtimestamp(int(epoch_s), country_tz(country)).strftime(
        "%Y-%m-%d %H:%M:%S %z"
    )


def item_payload(item: Item, order: Order, *, ids_as_strings: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "order_id": ident(order.order_id, ids_as_strings),
        "order_item_id": ident(item.order_item_id, ids_as_strings),
        "status": item.status,
        "package_id": item.package_id,
        "sku": item.sku,
        "shop_sku": item.shop_sku,
        "sku_id": item.sku_id,
        "product_id": item.product_id,
        "name": item.name,
        "variation": item.variation,
        "paid_price": item.paid_price,
        "item_price": item.item_price,
        "tax_amount": 0.0,
        "voucher_amount": round(item.item_price - item.paid_price, 2),
        "shipping_amount": 0.0,
        "shipping_type": item.shipping_type,
        "shipment_provider": item.shipment_provider,
        "shipping_provider_type": "standard",
        "tracking_code": item.tracking_code,
        "tracking_code_pre": "",
        "cancel_return_initiator": item.cancel_return_initiator,
        "reason": item.reason,
        "reason_detail": item.reason_detail,
        "return_status": item.return_status,
        "reverse_order_id": item.reverse_order_id,
        "need_cancel_confirm": False,
        "is_cancel_pending": False,
        "biz_group": item.biz_group,
        "is_fbl": item.is_fbl,
        "is_digital": 0,
        "is_reroute": 0,
        "order_type": "Normal",
        "order_flag": "NORMAL",
        "warehouse_code": "dropshipping",
        "shop_id": order.seller,
        "created_at": spaced_time(item.created_at, order.country),
        "updated_at": spaced_time(item.updated_at, order.country),
        "payment_time": int(item.created_at * 1000),
        "product_main_image": f"https://img.example.com/p/{item.product_id}.jpg",
        "product_detail_url": f"https://www.example.com/products/i{item.product_id}.html",
        "digital_delivery_info": "",
        "extra_attributes": "",
        "invoice_number": "",
        "purchase_order_id": "",
        "purchase_order_number": "",
    }
    out.update(item.extra)
    return out


def _address(order: Order) -> dict[str, str]:
    return {
        "first_name": order.customer_first_name,
        "last_name": order.customer_last_name,
        "country": order.country,
        "phone": "",
        "address1": "1 Example Road",
        "city": "",
        "post_code": "",
        "addressDsitrict": "",
    }


def order_payload(order: Order, *, ids_as_strings: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "order_id": ident(order.order_id, ids_as_strings),
        "order_number": ident(order.order_number, ids_as_strings),
        "created_at": format_time(order.created_at, order.country),
        "updated_at": format_time(order.updated_at, order.country),
        "statuses": order.statuses,
        "items_count": len(order.items),
        "price": f"{order.price:.2f}",
        "voucher": order.voucher,
        "voucher_platform": 0,
        "voucher_seller": 0,
        "shipping_fee": order.shipping_fee,
        "shipping_fee_original": order.shipping_fee,
        "shipping_fee_discount_seller": 0,
        "shipping_fee_discount_platform": 0,
        "payment_method": order.payment_method,
        "customer_first_name": order.customer_first_name,
        "customer_last_name": order.customer_last_name,
        "need_cancel_confirm": False,
        "is_cancel_pending": False,
        "gift_option": False,
        "gift_message": "",
        "remarks": "",
        "delivery_info": "",
        "warehouse_code": "dropshipping",
        "branch_number": "",
        "tax_code": "",
        "extra_attributes": "",
        "national_registration_number": "",
        "promised_shipping_times": "",
        "address_billing": _address(order),
        "address_shipping": _address(order),
    }
    out.update(order.extra)
    return out
