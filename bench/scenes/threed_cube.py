from manim import *


class SpinningCube(ThreeDScene):
    def construct(self):
        self.set_camera_orientation(phi=65 * DEGREES, theta=30 * DEGREES)
        cube = Cube(side_length=2, fill_opacity=0.7, fill_color=BLUE)
        self.play(Create(cube), run_time=1)
        self.play(Rotate(cube, angle=PI / 2, axis=UP), run_time=1)
