from manim import *


class SinePlot(Scene):
    def construct(self):
        axes = Axes(x_range=[0, 6, 1], y_range=[-1.5, 1.5, 0.5], x_length=9, y_length=4).add_coordinates()
        graph = axes.plot(np.sin, color=BLUE)
        self.play(Create(axes), run_time=1)
        self.play(Create(graph), run_time=1.5)
