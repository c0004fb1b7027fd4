from manim import *


class WavySurface(ThreeDScene):
    def construct(self):
        self.set_camera_orientation(phi=60 * DEGREES, theta=-45 * DEGREES)
        surface = Surface(
            lambda u, v: np.array([u, v, 0.5 * np.sin(u) * np.cos(v)]),
            u_range=[-3, 3],
            v_range=[-3, 3],
            resolution=(16, 16),
            fill_opacity=0.8,
        )
        self.play(Create(surface), run_time=1.5)
        self.begin_ambient_camera_rotation(rate=0.4)
        self.wait(1)
