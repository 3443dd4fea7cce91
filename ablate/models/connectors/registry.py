"""Every connector, by name: one line each, `"name": "module:Class"`, imported when first asked for.

`module` is a file of this package (`linear`), or a dotted module path from elsewhere (`my_pkg.my_connector`).

Adding a connector is one new file in this folder and one line here.
"""

CONNECTORS: dict[str, str] = {
    "linear": "linear:Linear",
    "mlp": "mlp:MLP",
    "avg-pool": "avg_pool:AvgPool",
    "attn-pool": "attn_pool:AttnPool",
    "perceiver": "perceiver:Perceiver",
    "qformer": "qformer:QFormer",
    "c-abstractor": "c_abstractor:CAbstractor",
    "ldp": "ldp:LDP",
    "pixel-shuffle": "pixel_shuffle:PixelShuffle",
}
