from manim import *


class AreaUnderCurve(Scene):
    def construct(self):
        axes = Axes(x_range=[0, 4, 1], y_range=[0, 10, 2], x_length=7, y_length=4).add_coordinates()
        curve = axes.plot(lambda x: 0.5 * x**2 + 1, color=GREEN)
        area = axes.get_area(curve, x_range=[1, 3], color=GREEN, opacity=0.4)
        self.play(Create(axes), Create(curve), run_time=1.2)
        self.play(FadeIn(area), run_time=0.8)
