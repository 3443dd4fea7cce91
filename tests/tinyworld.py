"""The tiny embedded world the root-level tests share (a module of its own: `from conftest import ...` resolves to
whichever conftest.py pytest loaded first under that name, so it breaks with the order tests run in)."""
TINY_WORLD = {"image_size": 64, "n_train": 96, "n_test": 24, "n_demo": 12, "n_text_docs": 32,
              "n_interleaved_docs": 16}
