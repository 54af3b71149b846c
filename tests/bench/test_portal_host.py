"""``bench.portal_host`` end to end at a small size: a host of many portals against the real
sink (which verifies, opens and checks every batch), then the delivery floor beside it."""

from __future__ import annotations

from bench.portal_host import main_async, parse_args


async def test_many_portals_start_deliver_in_order_and_compare_with_the_floor() -> None:
    args = parse_args(
        "--portals 30 --chats 2 --handoff 40 --messages 300 --rate 3000 --connections 20"
        " --timeout-s 60 --floor-s 1 --sleep".split()
    )
    result = await main_async(args)
    delivery = result["delivery"]
    assert delivery["delivered"] == 300
    assert (delivery["duplicates"], delivery["order_violations"], delivery["seq_problems"]) == (
        0,
        0,
        0,
    )
    assert delivery["delivered_per_s"] > 0
    assert delivery["cpu_ms_per_message"] > 0
    assert result["configure_s"] >= 0 and result["restart_configure_s"] >= 0
    assert result["floor"]["failed"] == 0 and result["floor"]["delivered"] > 0
    assert result["ratio_to_floor"] > 0
    assert result["sleep"]["started_before"] == 30
    assert result["sleep"]["put_to_sleep"] == 30, "every portal the traffic started is quiet"
