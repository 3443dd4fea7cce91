"""The encoder table of a grid with a fused encoder (`a+b`): one row per pre-trained encoder, the fusion named as
the join of those rows, not as an encoder "pre-trained elsewhere"."""
from __future__ import annotations

import pandas as pd
from report_frames import make_connectors_frame, make_connectors_meta

from ablate.report import results
from ablate.report.encoders import encoder_table


def test_a_fused_encoder_is_named_as_the_join_of_its_encoders_rows():
    meta = make_connectors_meta()
    frame = make_connectors_frame(seeds=(0,))
    fused = frame.assign(**{"encoder.name": "zoo:clip-read-s+zoo:clip-s", "cell_id": frame["cell_id"] + "-f"})
    fused = fused.drop(columns=[c for c in fused.columns if c.startswith("encoder/")])
    table = encoder_table(results.load(pd.concat([frame, fused], ignore_index=True), meta.swept_axes, meta.fixed),
                          meta)
    assert [row.cells[0].lines for row in table.rows] == [["zoo:clip-read-s"]]
    assert "Fused encoders (zoo:clip-read-s+zoo:clip-s) concatenate the features" in table.caption
    assert "pre-trained elsewhere" not in table.caption
