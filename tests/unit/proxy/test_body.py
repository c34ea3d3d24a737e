"""Reading request bodies piece by piece: the element bounds, decoding, and where each stops."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib

import pytest

from ppd.jsonshape import JsonSizeCounter, JsonSizeError, check_json_size, nests_deeper_than
from ppd.openai_api import ApiError
from ppd.proxy.body import BodyLimits, _CheckedBody, content_encoding, parse_json_object

LIMITS = BodyLimits(max_body_bytes=1 << 20, body_timeout_s=1.0, max_json_elements=1000)


def read(pieces: list[bytes], encoding: str = "", limits: BodyLimits = LIMITS) -> bytes:
    body = _CheckedBody(limits, encoding)

    async def feed_all() -> None:
        for piece in pieces:
            await body.feed(piece)

    asyncio.run(feed_all())
    return body.finish()


def pieces_of(data: bytes, size: int = 7) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_plain_text_passes_at_any_length_and_counts_are_the_same_in_pieces() -> None:
    text = json.dumps({"prompt": "w1 w2 " * 50_000, "max_tokens": 3}).encode()
    assert check_json_size(text, 10) == 1
    assert read(pieces_of(text, 4096)) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"[" + b",".join([b"{}"] * 101) + b"]", "more than 100 arrays and objects"),
        (b"[" + b",".join([b"1"] * 1001) + b"]", "more than 1000 elements"),
        (b"[" + b",".join([b'"a"'] * 1001) + b"]", "more than 1000 elements"),
        (b"[" * 5000, "more than"),
    ],
)
def test_too_many_elements_are_refused_from_the_bytes(text: bytes, message: str) -> None:
    with pytest.raises(JsonSizeError, match=message):
        check_json_size(text, 1000)
    with pytest.raises(ApiError, match=message):
        read(pieces_of(text))


def test_a_huge_body_is_refused_after_its_first_pieces() -> None:
    counter = JsonSizeCounter(1000)
    piece = b",".join([b"{}"] * 1000)
    fed = 0
    with pytest.raises(JsonSizeError):
        for _ in range(10_000):
            counter.feed(piece)
            fed += 1
    assert fed <= 1


def test_gzip_and_deflate_are_decoded_a_step_at_a_time_and_bombs_stop_at_the_limit() -> None:
    text = json.dumps({"prompt": "w1"}).encode()
    assert read(pieces_of(gzip.compress(text)), "gzip") == text
    assert read(pieces_of(zlib.compress(text)), "deflate") == text
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert read([raw_deflate.compress(text) + raw_deflate.flush()], "deflate") == text
    with pytest.raises(ApiError, match="once decoded") as bomb:
        read([gzip.compress(b" " * (8 << 20))], "gzip")
    assert bomb.value.status == 413
    for broken in (b"\x1f\x8b nope", gzip.compress(text)[:-4], gzip.compress(text) + b"trailing"):
        with pytest.raises(ApiError, match="not valid gzip") as error:
            read([broken], "gzip")
        assert error.value.status == 400


@pytest.mark.parametrize("value", ["zstdx", "compress", "gzip, br", "*", "br", "zstd"])
def test_only_identity_gzip_and_deflate_are_accepted(value: str) -> None:
    with pytest.raises(ApiError) as error:
        content_encoding(value)
    assert error.value.status == 415
    assert [content_encoding(v) for v in ("", "identity", "GZIP", " deflate ")] == [
        "",
        "identity",
        "gzip",
        "deflate",
    ]


def test_parse_json_object_refuses_depth_and_non_objects() -> None:
    with pytest.raises(ApiError, match="nests deeper"):
        parse_json_object(b'{"a": ' + b"[" * 65 + b"]" * 65 + b"}", 65)
    with pytest.raises(ApiError, match="nests deeper"):
        parse_json_object(b"[" * 3000 + b"]" * 3000, 3000)
    with pytest.raises(ApiError, match="JSON object"):
        parse_json_object(b"[1]", 1)
    assert parse_json_object(b'{"a": [[1]]}', 2) == {"a": [[1]]}
    assert not nests_deeper_than({"a": [[1]]}, 3)
