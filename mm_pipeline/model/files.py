"""The names of the files inside a model folder, an ONNX export folder and a checkpoint folder, each spelled
once (imports nothing).

These folders may come from outside the data directory (``MM_RUCLIP_DIR``, ``mm-pipeline embed --model DIR``,
``fine_tune(..., checkpoint_dir, ...)``), so their file names belong to the code that writes them, not to
:class:`mm_pipeline.layout.Layout`: a model folder is written by :func:`mm_pipeline.model.clip.save_folder` in
ruCLIP's layout (plus the lexical projection, :class:`mm_pipeline.model.lexical.LexicalProjection`), an export
folder by :mod:`mm_pipeline.model.export`, a checkpoint folder by
:class:`mm_pipeline.model.checkpoints.Checkpoints`. They live here rather than in those modules so that
``Layout``, which names the copies under the data directory with them, stays importable without torch. The
towers' files are :func:`mm_pipeline.inference.encoders.tower_file`.
"""

# a model folder (ruCLIP's layout, read by CLIP.from_pretrained and RuCLIPProcessor.from_pretrained)
CONFIG_FILE = "config.json"
BPE_FILE = "bpe.model"  # also copied into every export
WEIGHTS_FILE = "pytorch_model.bin"
TRAINING_FILE = "training.json"  # origin, recipe, history and fusion choice of a saved model
# the lexical projection, when the model has one (also copied into every export)
LEXICAL_FILE = "lexical.joblib"

# an ONNX export folder
MANIFEST_FILE = "manifest.json"  # model version, sizes, fusion weights
PARITY_FILE = "parity.json"  # the torch↔ONNX parity report and the passing variants' timing

# a checkpoint folder (one training job's; the job id is stored inside the files)
LAST_CHECKPOINT_FILE = "last.pt"  # weights, optimizer state and where the run stands
BEST_CHECKPOINT_FILE = "best.pt"  # the weights of the best epoch so far
