"""`compact_encoder` writes exactly what `json.JSONEncoder` with the same options writes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from themis.adapters.json_text import compact_encoder

_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text()  # lone surrogates included
)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@pytest.mark.parametrize("ensure_ascii", [True, False])
@given(value=_VALUES)
def test_the_text_is_json_encoders(ensure_ascii: bool, value: Any) -> None:
    reference = json.JSONEncoder(separators=(",", ":"), ensure_ascii=ensure_ascii).encode
    assert compact_encoder(ensure_ascii=ensure_ascii)({"v": value}) == reference({"v": value})


def test_refusals_are_json_encoders() -> None:
    strict = compact_encoder(allow_nan=False)
    with pytest.raises(ValueError, match="Out of range float values"):
        strict({"x": math.nan})
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        compact_encoder()({"x": {1}})
    assert compact_encoder()({"x": math.inf}) == '{"x":Infinity}'
