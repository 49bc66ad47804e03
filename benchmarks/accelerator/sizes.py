"""The shapes of one accelerator check: FULL (the report's) and TINY (a CPU smoke test)."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Every shape of one run (full: the report's; tiny: a CPU smoke test)."""

    variant: str = "r2plus1d_34"
    clip: tuple[int, int, int] = (16, 112, 112)  # T, H, W
    train_batches: tuple[int, ...] = (256, 192, 128, 96, 64, 48, 32, 16, 8, 4, 2, 1)
    extract_batches: tuple[int, ...] = (512, 384, 256, 128, 64, 32, 16, 8)
    num_actions: int = 200
    num_concepts: int = 1000
    steps: int = 10
    # captioner (configs/captioner/base.py is ActivityNet size; `captioner_model` overrides)
    captioner_batches: tuple[int, ...] = (1, 8)
    captioner_model: tuple[tuple[str, int], ...] = ()
    feat_steps: int = 100
    feat_dim: int = 512
    max_events: int = 30
    caption_len: int = 30
    vocab: int = 5748
    captioner_steps: int = 10
    # input pipeline on synthetic shards
    videos: int = 12
    video_s: tuple[float, float] = (8.0, 12.0)
    frame_size: tuple[int, int] = (128, 172)  # synthetic video H, W
    resize: tuple[int, int] = (128, 171)  # TSP's stored frame size
    crop: int = 112
    pipeline_seconds: float = 8.0
    pipeline_batch: int = 8


FULL = Sizes()
TINY = Sizes(
    variant="small", clip=(4, 32, 32), train_batches=(4, 2), extract_batches=(4,),
    num_actions=6, num_concepts=16, steps=2, captioner_batches=(2,),
    captioner_model=(("hidden_dim", 32), ("ffn_dim", 32), ("num_heads", 2), ("enc_layers", 1),
                     ("dec_layers", 1), ("num_levels", 1), ("enc_points", 2), ("dec_points", 2),
                     ("num_queries", 4), ("max_event_count", 4), ("cap_levels", 1),
                     ("cap_points", 2), ("rnn_size", 32), ("word_dim", 32), ("att_hid", 32)),
    feat_steps=16, feat_dim=32, max_events=4, caption_len=16, vocab=40, captioner_steps=2,
    videos=2, video_s=(4.0, 4.0), frame_size=(48, 64), resize=(40, 54), crop=32,
    pipeline_seconds=1.0, pipeline_batch=4)
