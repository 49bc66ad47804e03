"""The project's shared infrastructure: the one package every stage uses for it.

Not data preparation: it lives inside `data_prep` only because the fixed import direction is
data_prep <- sa_tsp_jax and data_prep <- captioner_jax (the trainers never import each other),
so this is the one place both may depend on. Nothing outside re-implements what is here.

  paths          the path layer (local and gs:// alike; epath); local staging for h5py/PyAV
  atomic_files   atomic writes (temp + rename locally, single-object writes on buckets)
  jax_setup      compilation cache and `jax.distributed` from a config's `run` block
  host_memory    glibc malloc + CPU dispatch settings that keep XLA's freed temporaries
  distributed    process-0 writes, gathering host results, cross-process consistency checks
  mesh           device mesh, parameter shardings, global batches
  loop           the trainer kit: itstime, MetricWindow, mesh_for_batch
  resume         exact resume for every trainer: resumable metric window, evaluation log,
                 restore_or_init / save_checkpoint, enter_resources (ExitStack cleanup)
  checkpointing  Orbax checkpoints of train state + Grain iterator (automatic resume)
  preemption     SIGTERM -> checkpoint at the next step boundary on every host
  metrics        metrics.jsonl (+ TensorBoard), process 0 only, truncated on resume
  progress       progress lines with rate and ETA, the NaN guard
  videos         video file extensions and the id rule (ActivityNet id <-> YouTube id)
  fingerprint    what a stage's outputs depend on; refuse to mix stale outputs
  workdir_lock   one run per workdir (stale locks taken over); resume-config check
  tree_names     pytree key paths as strings
"""
