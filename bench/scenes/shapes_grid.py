from manim import *


class SquareGrid(Scene):
    def construct(self):
        grid = VGroup(*[Square(0.6, fill_opacity=0.6, color=interpolate_color(BLUE, PINK, i / 23)) for i in range(24)])
        grid.arrange_in_grid(4, 6, buff=0.15)
        self.play(LaggedStart(*[FadeIn(s, scale=0.5) for s in grid], lag_ratio=0.05), run_time=1.5)
        self.play(grid.animate.shift(UP * 0.5), run_time=0.5)
