"""MemoryConfig: every default once, and the memory built from it."""
from __future__ import annotations

import pytest

from optical_memory import ConfigError, InputError, MemoryConfig, OpticalMemory
from optical_memory.config import DEFAULT_DECODER, DEFAULT_KEEP_LAST, DEFAULT_READBACK


def test_defaults_are_the_memorys():
    cfg = MemoryConfig()
    mem = OpticalMemory(":memory:")
    assert (cfg.decoder, cfg.keep_last, cfg.readback) == (DEFAULT_DECODER, DEFAULT_KEEP_LAST,
                                                           DEFAULT_READBACK)
    assert (mem.decoder_name, mem.keep_last, mem.target.name) == (cfg.decoder, cfg.keep_last,
                                                                  cfg.target)
    mem.close()


def test_from_config_accepts_a_config_or_a_dict_and_names_unknown_keys():
    with OpticalMemory.from_config({"store": ":memory:", "keep_last": 3}) as mem:
        assert mem.keep_last == 3 and mem.config.keep_last == 3
    with OpticalMemory.from_config(MemoryConfig(store=":memory:", keep_text=False)) as mem:
        assert mem.keep_text is False
    with pytest.raises(ConfigError, match=r"unknown memory config key.*'keep_lats'"):
        MemoryConfig.from_dict({"keep_lats": 3})


def test_bad_values_are_typed_errors():
    with pytest.raises(InputError, match="keep_last"):
        MemoryConfig(keep_last=-1)
    with pytest.raises(ConfigError, match="readback"):
        MemoryConfig(readback=1.5)
    with pytest.raises(ConfigError, match="render_config must be a RenderConfig"):
        MemoryConfig(render_config="big")  # type: ignore[arg-type]
