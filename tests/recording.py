"""Training-loop hooks that record what the loop reports, for tests that compare loss curves (a module of its own:
`from recording import Losses` works from every test folder, as `tinyworld` does)."""


class Losses:
    """Each step's loss, in order; checkpoints are ignored."""

    def __init__(self):
        self.losses = []

    def on_step(self, step, loss, lr):
        self.losses.append(loss)

    def on_checkpoint(self, step, state):
        pass
