"""``bench.portal_host`` end to end at a small size: a host of many portals against the real
sink (which verifies, opens and checks every batch), then the delivery floor beside it."""

from __future__ import annotations

import argparse

from bench.portal_host import main_async


async def test_many_portals_start_deliver_in_order_and_compare_with_the_floor() -> None:
    args = argparse.Namespace(
        portals=30,
        messages=300,
        rate=3000.0,
        connections=20,
        timeout_s=60.0,
        floor_s=1.0,
        memory=False,
        top=5,
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
