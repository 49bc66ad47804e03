"""Orchestration: the stage registry, the pipeline runner and the stages that chain others.

  registry.py      stage name -> "module:function" (STAGES), pipeline report names (REPORTS),
                   and the few functions of other packages the orchestration calls (HELPERS)
  config_files.py  `path/config.py[:arg]` -> locked ConfigDict, dotted overrides (a missing
                   key names the keys at its level), the resolved `config.json` every stage
                   writes into its workdir, temporaries of an interrupted run removed
  errors.py        what launch.py prints for errors a person can fix (two lines, exit 1)
  pipeline.py      stage "pipeline": steps in order, skipped when done (`.done-<step>.json`)
  report.py        the pipeline's metric tables (`results.md`, `results.json`)
  caption_video.py stage "caption_video": your videos -> shards -> features -> captions -> pages

Import direction. `data_prep` is the package both model packages import (data_prep <-
sa_tsp_jax, data_prep <- captioner_jax), so it must not import them back. The orchestration
reaches their code only through the import strings of `registry`, imported when a stage or
helper is called (`registry.import_function`), never at module import: `import data_prep.*`
pulls in neither model package, and the model packages never see each other. `launch.py` only
parses flags, sets up JAX and dispatches to `registry.resolve_stage(config.stage)`.
"""
