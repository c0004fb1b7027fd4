from manim import *


class SphereOnAxes(ThreeDScene):
    def construct(self):
        self.set_camera_orientation(phi=70 * DEGREES, theta=40 * DEGREES)
        axes = ThreeDAxes(x_range=[-3, 3], y_range=[-3, 3], z_range=[-2, 2])
        sphere = Sphere(radius=1, resolution=(12, 12)).set_color(TEAL)
        self.play(Create(axes), run_time=0.8)
        self.play(FadeIn(sphere), run_time=0.8)
        self.play(sphere.animate.shift(OUT), run_time=0.6)
