"""Model (group ``model``, job ``model_job``, pool ``heavy_compute``): ``base_model`` (``Layout.model_dir("base")``,
:mod:`mm_pipeline.model.recipe` decides the weight source and BPE), ``fine_tuned_model``
(``Layout.model_dir("fine_tuned")`` and ``checkpoints_dir``; recipe from the base model's origin, W&B logging
wired here, training in :mod:`mm_pipeline.model.stage`) and ``onnx_model`` (``Layout.onnx_dir``) with its
blocking check ``onnx_parity`` (writes ``Layout.onnx_parity``)."""
