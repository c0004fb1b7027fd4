from manim import *


class GeneratedAnimation(Scene):
    def construct(self):
        axes = Axes(x_range=[-3, 3, 1], y_range=[-1, 9, 2], x_length=6, y_length=4).add_coordinates()
        graph = axes.plot(lambda x: x**2, color=BLUE)
        self.play(Create(axes), run_time=0.5)
        self.play(Create(graph), run_time=1)
