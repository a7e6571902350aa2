"""The parts of `bench throughput --mix` that need no service: the mix, its order, the synthetic files."""

from __future__ import annotations

import struct
import zlib
from collections import Counter

import pytest

from wa_ray.bench.mix import KindSequence, MixPlan, MixSpec, Uploaded, inbox_key, media_corrupted, parse_mix, synthetic


def test_parse_mix_normalizes_and_refuses_nonsense() -> None:
    assert parse_mix("text:70,image:20,document:10") == (("text", 0.7), ("image", 0.2), ("document", 0.1))
    assert parse_mix("text:1,image:1") == (("text", 0.5), ("image", 0.5))
    for bad in ("text", "poll:5", "text:0", "text:1,text:2", "text:-1", "image:x"):
        with pytest.raises(ValueError):
            parse_mix(bad)


def test_kind_sequence_keeps_the_shares_in_every_prefix() -> None:
    seq = KindSequence(parse_mix("text:70,image:20,document:10"))
    kinds = [seq.next() for _ in range(100)]
    assert Counter(kinds) == {"text": 70, "image": 20, "document": 10}
    first = Counter(kinds[:10])
    assert first == {"text": 7, "image": 2, "document": 1}, first
    assert "image" in kinds[:5]  # interleaved, not a block of text first


@pytest.mark.parametrize("kind,size", [("image", 1024 * 1024), ("image", 5000), ("document", 1024 * 1024),
                                       ("document", 300), ("video", 16 * 1024 * 1024)])
def test_synthetic_files_have_the_size_and_the_format(kind: str, size: int) -> None:
    data, mimetype, name = synthetic(kind, size)
    assert len(data) == size, (kind, size, len(data))
    if kind == "image":
        assert mimetype == "image/png" and data.startswith(b"\x89PNG\r\n\x1a\n")
        pos, chunks = 8, []
        while pos < len(data):  # every chunk's length and CRC are right, IDAT inflates to the rows
            (length,) = struct.unpack(">I", data[pos:pos + 4])
            tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
            assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(tag + body)
            chunks.append((tag, body))
            pos += 12 + length
        tags = [t for t, _ in chunks]
        assert tags[0] == b"IHDR" and tags[-1] == b"IEND" and b"IDAT" in tags
        width, height = struct.unpack(">II", chunks[0][1][:8])
        assert len(zlib.decompress(dict(chunks)[b"IDAT"])) == height * (width + 1)
    elif kind == "document":
        assert mimetype == "application/pdf" and data.startswith(b"%PDF-1.4") and data.endswith(b"%%EOF\n")
    else:
        assert mimetype == "video/mp4" and data[4:8] == b"ftyp" and data[28:32] == b"mdat"
        assert struct.unpack(">I", data[24:28])[0] == size - 24
    assert synthetic(kind, size)[0] != data  # random inside: nothing on the way can compress or dedupe it


def test_bodies_and_the_phone_side() -> None:
    plan = MixPlan(MixSpec(parse_mix("text:1,image:1,document:1")),
                   {"image": Uploaded("image", "med_a", 10, "aa", "image/png", "bench.png", 1.0),
                    "document": Uploaded("document", "med_b", 10, "bb", "application/pdf", "bench.pdf", 1.0)})
    assert plan.body("text", "155", "s00", "bench t #1", "normal") == {"session_id": "s00", "to": "155",
                                                                       "priority": "normal", "text": "bench t #1"}
    image = plan.body("image", "155", "s00", "bench t #2", "normal")
    assert image["type"] == "image" and image["media"] == {"media_id": "med_a"} and image["caption"] == "bench t #2"
    assert "filename" not in image
    assert plan.body("document", "155", "s00", "bench t #3", "normal")["filename"] == "bench.pdf"
    entries = [{"body": "bench t #1"}, {"body": "", "caption": "bench t #2", "media": {"sha256": "aa"}},
               {"body": "", "caption": "bench t #3", "media": {"sha256": "xx"}}]
    assert [inbox_key(e) for e in entries] == ["bench t #1", "bench t #2", "bench t #3"]
    assert media_corrupted(entries, "bench t #", {"bench t #2": "aa", "bench t #3": "bb"}) == 1
