"""data_prep: on-disk formats, text, shared infrastructure and the orchestration of stages.

  annotations/   ActivityNet Captions, TSP CSVs, ActivityNet v1.3 readers/writers
  synthetic/     the synthetic data set generator (stage synthetic_data); real ActivityNet
                 annotations of a few ids with generated videos (stage activitynet_subset)
  text/          caption vocabulary, semantic concepts, IDF (stage text_vocab)
  labels/        TSP-style per-video labels and per-clip targets
  video/         PyAV decoding (local or gs:// files) and JPEG frames
  shards/        TFRecord clip shards + offset index (stage write_shards)
  pipelines/     Grain sources and input pipelines over the shards
  infra/         shared infrastructure of every stage (path layer, atomic files, mesh,
                 checkpoints, metrics, JAX setup, multi-host helpers, video-id rule)
  orchestration/ stage registry, pipeline runner, caption_video

Both model packages import data_prep, never the reverse: the orchestration calls their stages
through registry import strings, resolved when a stage runs (orchestration/__init__.py).
"""
