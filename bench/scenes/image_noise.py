from manim import *


class NoiseTiles(Scene):
    def construct(self):
        rng = np.random.default_rng(3)
        tiles = Group(
            *[ImageMobject(rng.integers(0, 255, size=(32, 32, 3), dtype=np.uint8)).scale(2) for _ in range(4)]
        ).arrange_in_grid(2, 2, buff=0.2)
        self.play(FadeIn(tiles), run_time=1)
        self.play(tiles.animate.rotate(PI / 8), run_time=1)
