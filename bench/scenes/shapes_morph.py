from manim import *


class ShapeMorph(Scene):
    def construct(self):
        square = Square(color=BLUE, fill_opacity=0.5)
        circle = Circle(color=RED, fill_opacity=0.5)
        hexagon = RegularPolygon(6, color=GREEN, fill_opacity=0.5)
        self.play(Create(square), run_time=0.6)
        self.play(Transform(square, circle), run_time=0.7)
        self.play(Transform(square, hexagon), run_time=0.7)
