from manim import *


class GeneratedAnimation(Scene):
    def construct(self):
        circle = Circle()
        self.play(Create(circle), run_time=0.5)
        radius = 0
        scale = 1 / radius
        self.play(circle.animate.scale(scale))
