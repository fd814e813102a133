"""Large files reach ingest workers as runs of whole lines, numbered as in the file."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.ingest.parallel import file_chunks

_LINES = st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=60)


@settings(max_examples=300, deadline=None)
@given(
    lines=_LINES,
    last=st.binary(max_size=5).map(lambda b: b.replace(b"\n", b"")),
    per_chunk=st.integers(1, 12),
    block=st.integers(1, 64),
)
def test_chunks_are_runs_of_whole_lines(
    lines: list[bytes], last: bytes, per_chunk: int, block: int
) -> None:
    data = b"".join(line + b"\n" for line in lines) + last
    # Small reads, so lines straddle them.
    chunks = list(file_chunks("f", io.BytesIO(data), per_chunk, read_size=block))

    assert b"".join(blob for _, _, blob in chunks) == data
    expected_first = 1
    for number, (origin, first, blob) in enumerate(chunks):
        assert origin == "f"
        assert first == expected_first
        is_last = number == len(chunks) - 1
        if not is_last:
            assert blob.count(b"\n") == per_chunk
            assert blob.endswith(b"\n")
        else:
            assert blob
            assert blob.count(b"\n") <= per_chunk
        expected_first += blob.count(b"\n")
