from manim import *


class ScatterPoints(Scene):
    def construct(self):
        axes = Axes(x_range=[0, 10, 2], y_range=[0, 10, 2], x_length=6, y_length=5).add_coordinates()
        rng = np.random.default_rng(7)
        dots = VGroup(*[Dot(axes.c2p(x, y), color=ORANGE) for x, y in rng.uniform(0.5, 9.5, size=(20, 2))])
        self.play(Create(axes), run_time=0.8)
        self.play(LaggedStart(*[GrowFromCenter(d) for d in dots], lag_ratio=0.1), run_time=1.2)
