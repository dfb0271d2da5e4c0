# Build drender's 20-frame Cycles demo scene (cheap early frames, costlier late ones) and save it.
#
# Run: blender -b --factory-startup --python blend/make_demo.py -- OUTPUT.blend
#
# The camera circles a colour-changing cube while spheres rise out of the floor one after another;
# the later ones are glass and polished metal, so later frames cost more than early ones (the
# point of a pull scheduler). 320x180, 32 samples, no denoising: about 13 s for all 20 frames on
# two cores.
import math
import os
import sys

import bpy

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '.'))
import scene_kit  # noqa: E402  (found through the path above)

FRAME_START = 1
FRAME_END = 20



def checker_floor():
    """A large floor with a procedural checker, so camera motion is easy to see."""
    bpy.ops.mesh.primitive_plane_add(size=40.0, location=(0.0, 0.0, 0.0))
    floor = bpy.context.active_object
    floor.name = "Floor"
    mat = bpy.data.materials.new("FloorMat")
    mat.use_nodes = True
    nodes = mat.node_tree.nodes
    checker = nodes.new("ShaderNodeTexChecker")
    checker.inputs["Scale"].default_value = 20.0
    checker.inputs["Color1"].default_value = (0.8, 0.8, 0.75, 1.0)
    checker.inputs["Color2"].default_value = (0.15, 0.15, 0.18, 1.0)
    bsdf = nodes["Principled BSDF"]
    bsdf.inputs["Roughness"].default_value = 0.6
    mat.node_tree.links.new(checker.outputs["Color"], bsdf.inputs["Base Color"])
    floor.data.materials.append(mat)


def hero_cube():
    """A spinning cube in the middle whose colour sweeps from red through green to blue."""
    bpy.ops.mesh.primitive_cube_add(size=1.6, location=(0.0, 0.0, 0.8))
    cube = bpy.context.active_object
    cube.name = "Cube"
    bpy.ops.object.modifier_add(type="BEVEL")
    cube.modifiers["Bevel"].width = 0.08
    cube.modifiers["Bevel"].segments = 3
    mat = scene_kit.principled("CubeMat", (1.0, 0.1, 0.1, 1.0), roughness=0.35)
    cube.data.materials.append(mat)
    color = mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"]
    for frame, rgba in ((FRAME_START, (1.0, 0.05, 0.05, 1.0)), (10, (0.1, 0.9, 0.1, 1.0)),
                        (FRAME_END, (0.1, 0.2, 1.0, 1.0))):
        color.default_value = rgba
        color.keyframe_insert("default_value", frame=frame)
    for frame, angle in ((FRAME_START, 0.0), (FRAME_END, math.radians(180.0))):
        cube.rotation_euler = (0.0, 0.0, angle)
        cube.keyframe_insert("rotation_euler", index=2, frame=frame)


def rising_spheres():
    """Eight spheres on a ring that rise from below the floor one after another.

    Sphere i is hidden from render before its turn, then rises over three frames. The first four
    are plain diffuse; the last four are glass and mirror metal, which need many more bounces.
    """
    kinds = [
        ("Diffuse", dict(color=(0.9, 0.6, 0.1, 1.0))),
        ("Diffuse", dict(color=(0.2, 0.7, 0.9, 1.0))),
        ("Diffuse", dict(color=(0.8, 0.2, 0.6, 1.0))),
        ("Diffuse", dict(color=(0.4, 0.8, 0.3, 1.0))),
        ("Glass", dict(color=(0.95, 0.95, 1.0, 1.0), roughness=0.0, transmission=1.0, ior=1.5)),
        ("Metal", dict(color=(0.95, 0.8, 0.5, 1.0), metallic=1.0, roughness=0.05)),
        ("Glass", dict(color=(0.8, 1.0, 0.9, 1.0), roughness=0.05, transmission=1.0, ior=1.45)),
        ("Metal", dict(color=(0.9, 0.9, 0.95, 1.0), metallic=1.0, roughness=0.0)),
    ]
    radius = 3.0
    for i, (kind, params) in enumerate(kinds):
        angle = 2.0 * math.pi * i / len(kinds)
        x, y = radius * math.cos(angle), radius * math.sin(angle)
        bpy.ops.mesh.primitive_uv_sphere_add(radius=0.7, segments=48, ring_count=24,
                                             location=(x, y, -1.0))
        sphere = bpy.context.active_object
        sphere.name = "Sphere%d%s" % (i, kind)
        bpy.ops.object.shade_smooth()
        sphere.data.materials.append(scene_kit.principled("%sMat%d" % (kind, i), **params))
        appear = 2 + 2 * i  # frames 2, 4, ..., 16
        sphere.hide_render = True
        sphere.keyframe_insert("hide_render", frame=FRAME_START)
        sphere.hide_render = False
        sphere.keyframe_insert("hide_render", frame=appear)
        sphere.location.z = -1.0
        sphere.keyframe_insert("location", index=2, frame=appear)
        sphere.location.z = 0.7
        sphere.keyframe_insert("location", index=2, frame=appear + 3)
        for fcurve in sphere.animation_data.action.fcurves:
            if fcurve.data_path == "hide_render":
                for point in fcurve.keyframe_points:
                    point.interpolation = "CONSTANT"


def camera_and_lights(scene):
    """A camera that circles and climbs while looking at the cube; a sun and a sky colour."""
    target = bpy.data.objects.new("Target", None)
    target.location = (0.0, 0.0, 0.6)
    scene.collection.objects.link(target)

    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    cam.data.lens = 30.0
    scene.collection.objects.link(cam)
    scene.camera = cam
    track = cam.constraints.new("TRACK_TO")
    track.target = target
    track.track_axis = "TRACK_NEGATIVE_Z"
    track.up_axis = "UP_Y"
    for frame in range(FRAME_START, FRAME_END + 1):
        t = (frame - FRAME_START) / (FRAME_END - FRAME_START)
        angle = math.radians(-100.0 + 120.0 * t)
        dist = 9.0 - 1.5 * t
        cam.location = (dist * math.cos(angle), dist * math.sin(angle), 2.0 + 2.0 * t)
        cam.keyframe_insert("location", frame=frame)

    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.data.energy = 4.0
    sun.data.angle = math.radians(3.0)
    sun.rotation_euler = (math.radians(45.0), math.radians(10.0), math.radians(30.0))
    scene.collection.objects.link(sun)

    scene_kit.sky(scene, (0.35, 0.45, 0.6, 1.0), 0.8)


def render_settings(scene):
    """Cycles on the CPU, small and quick, PNG output, no denoising."""
    scene_kit.cycles(scene, (320, 180), 32, (FRAME_START, FRAME_END),
                     dict(max_bounces=8, transmission_bounces=8, glossy_bounces=4,
                          diffuse_bounces=2, caustics_reflective=False,
                          caustics_refractive=False))
    scene.render.filepath = "//output/demo_####"
    scene.render.fps = 12


def build(out_path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.name = "Demo"
    render_settings(scene)
    checker_floor()
    hero_cube()
    rising_spheres()
    camera_and_lights(scene)
    scene.frame_set(FRAME_START)
    bpy.ops.wm.save_as_mainfile(filepath=out_path, compress=True)


scene_kit.run(build, 'blend/make_demo.py')
