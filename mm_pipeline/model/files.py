"""The names of the files inside a model folder and an ONNX export folder, each spelled once (imports nothing).

Both folders may come from outside the data directory (``MM_RUCLIP_DIR``, ``mm-pipeline embed --model DIR``),
so their file names belong to the code that writes them, not to :class:`mm_pipeline.layout.Layout`: a model
folder is written by :func:`mm_pipeline.model.clip.save_folder` in ruCLIP's layout, an export folder by
:mod:`mm_pipeline.model.export`. They live here rather than in those modules so that ``Layout``, which names
the copies under the data directory with them, stays importable without torch. The lexical projection's file
is :data:`mm_pipeline.model.lexical.LEXICAL_FILE`; the towers' files are
:func:`mm_pipeline.inference.encoders.onnx_file`.
"""

# a model folder (ruCLIP's layout, read by CLIP.from_pretrained and RuCLIPProcessor.from_pretrained)
CONFIG_FILE = "config.json"
BPE_FILE = "bpe.model"  # also copied into every export
WEIGHTS_FILE = "pytorch_model.bin"
TRAINING_FILE = "training.json"  # origin, recipe, history and fusion choice of a saved model

# an ONNX export folder
MANIFEST_FILE = "manifest.json"  # model version, sizes, fusion weights
PARITY_FILE = "parity.json"  # the torch↔ONNX parity report and the passing variants' timing
