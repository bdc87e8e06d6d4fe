"""Echo round trip through wsbox with Python's `websockets`, which offers
permessage-deflate (with client_max_window_bits) by default.

Usage: deflate_echo.py URL. Prints the negotiated extension, exits non-zero
on any mismatch.
"""
import asyncio
import sys

from websockets.asyncio.client import connect


async def main(url: str) -> None:
    async with connect(url, max_size=None) as ws:
        ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert ext.startswith("permessage-deflate"), f"deflate not negotiated: {ext!r}"
        messages = ["hello", "κόσμε " * 500, b"\x00\x01" * 40000, "x" * 20, "{\"k\": 1} " * 3000]
        for m in messages:
            await ws.send(m)
            got = await asyncio.wait_for(ws.recv(), 10)
            assert got == m, f"echo mismatch for a {type(m).__name__} of {len(m)}"
        await ws.close(code=4001, reason="bye")
        assert ws.close_code == 4001, ws.close_code
        print(f"ok: {len(messages)} echoes with {ext}")


asyncio.run(main(sys.argv[1]))
