from manim import *


class RenderTimes(Scene):
    def construct(self):
        chart = BarChart(values=[4.1, 2.3, 1.2, 0.9], bar_names=["a", "b", "c", "d"], y_range=[0, 5, 1])
        self.play(Create(chart), run_time=1.5)
        self.play(chart.animate.change_bar_values([3.5, 2.0, 1.0, 0.6]), run_time=1)
