# Warm-mode driver run inside Blender (--python FILE): renders frames on command over two pipes.
#
# Protocol (see include/dr_blender.h): arguments after '--' are
#   --drender-fds CMD_FD,REPLY_FD --drender-settings JSON
# Commands arrive one JSON object per line on CMD_FD ("render" or "quit"); replies go one JSON
# object per line on REPLY_FD ("ready", then "done" or "error" per render; "fatal" instead of
# "ready" when the device asked for cannot be had, e.g. a GPU type Blender does not see). EOF on
# CMD_FD means quit. An "error" reply carries the exception message first, then the traceback; its "frame" is
# -1 when the command had none. With the setting "assets": true, "ready" also lists the scene's
# external files ("assets", see include/dr_assets.h). A failure while applying the settings is printed to stderr and
# Blender exits with status 1 before "ready". This text is embedded in the drender binary, which
# writes it once to a private file ($TMPDIR/drender-UID/driver-HASH.py) and runs that, so it must
# not rely on where that file is or on being imported as a module. One-off modes instead of the
# protocol: --drender-merge JSON (a split still's ranges) and --drender-pack JSON (a
# self-contained copy of the scene, see dr_assets_pack).

import json
import os
import sys
import time
import traceback

import bpy


class SetupError(Exception):
    """Bad arguments or settings: reported on stderr, Blender exits non-zero without "ready"."""


def parse_args(argv):
    """Return (cmd_fd, reply_fd, settings dict) from the arguments after '--'."""
    args = argv[argv.index("--") + 1:] if "--" in argv else []
    fds = None
    settings = {}
    i = 0
    while i < len(args):
        name = args[i]
        if name in ("--drender-fds", "--drender-settings") and i + 1 < len(args):
            value = args[i + 1]
            i += 2
        else:
            raise SetupError("unexpected driver argument: %r" % name)
        if name == "--drender-fds":
            try:
                cmd_fd, reply_fd = (int(part) for part in value.split(","))
            except ValueError:
                raise SetupError("--drender-fds wants CMD_FD,REPLY_FD, got %r" % value)
            fds = (cmd_fd, reply_fd)
        else:
            try:
                settings = json.loads(value)
            except ValueError as exc:
                raise SetupError("--drender-settings is not valid JSON: %s" % exc)
            if not isinstance(settings, dict):
                raise SetupError("--drender-settings must be a JSON object")
    if fds is None:
        raise SetupError("missing --drender-fds CMD_FD,REPLY_FD")
    return fds[0], fds[1], settings


def oidn_available():
    """True if this Blender's Cycles was built with OpenImageDenoise."""
    try:
        import _cycles
    except ImportError:
        return False
    return bool(getattr(_cycles, "with_openimagedenoise", False))


def apply_settings(scene, settings):
    """Apply engine, samples, format and threads to SCENE; return a list of notes for "ready"."""
    notes = []
    render = scene.render

    engine = settings.get("engine")
    if engine:
        try:
            render.engine = engine
        except TypeError as exc:
            raise SetupError("unknown render engine %r: %s" % (engine, exc))

    samples = settings.get("samples") or 0
    if samples > 0:
        if render.engine == "CYCLES":
            scene.cycles.samples = samples
            # Adaptive sampling would stop early; an explicit count should mean what it says.
            scene.cycles.use_adaptive_sampling = False
        elif render.engine == "BLENDER_EEVEE":
            scene.eevee.taa_render_samples = samples
        else:
            notes.append("samples=%d ignored: engine %s has no sample count"
                         % (samples, render.engine))

    fmt = settings.get("format")
    if fmt:
        try:
            render.image_settings.file_format = fmt
        except TypeError as exc:
            raise SetupError("unknown file format %r: %s" % (fmt, exc))

    # A frame is one file: movie containers cannot be written frame by frame.
    if render.image_settings.file_format in ("FFMPEG", "AVI_JPEG", "AVI_RAW"):
        raise SetupError("file format %s is a movie; choose an image format such as PNG"
                         % render.image_settings.file_format)

    threads = settings.get("threads") or 0
    if threads > 0:
        render.threads_mode = "FIXED"
        render.threads = threads

    # Without OpenImageDenoise, Cycles 3.4 fails the whole render ("Build without
    # OpenImageDenoiser") and writes nothing, so denoising is switched off instead.
    if render.engine == "CYCLES" and scene.cycles.use_denoising and not oidn_available():
        # Reading an OIDN denoiser value in such a build yields '' (the enum item is missing).
        if scene.cycles.denoiser != "OPTIX":
            scene.cycles.use_denoising = False
            notes.append("denoising turned off: this Blender has no OpenImageDenoise")
    return notes


def range_of(samples, ranges, k):
    """(sample_offset, count) of range K of RANGES over SAMPLES samples: sizes decrease linearly
    (weights 2R, 2R-1, ..., R+1), so the long ranges start first and the short ones fill the end."""
    total = sum(2 * ranges - i for i in range(ranges))
    before = sum(2 * ranges - i for i in range(k))
    start = samples * before // total
    end = samples * (before + 2 * ranges - k) // total
    return start, end - start


def compositor_extra(scene):
    """Names of compositor nodes beyond Render Layers -> Composite/Viewer, when it is used."""
    if not scene.use_nodes or not scene.node_tree or not scene.render.use_compositing:
        return []
    plain = ("R_LAYERS", "COMPOSITE", "VIEWER")
    return [n.name for n in scene.node_tree.nodes if n.type not in plain]


def apply_still(scene, settings, notes):
    """Check that SCENE's frame can be split by sample ranges and set it up for range renders;
    SetupError (exit 2 on rank 0) says why it cannot. Returns the facts for "ready"."""
    ranges = settings.get("ranges") or 0
    if scene.render.engine != "CYCLES":
        raise SetupError("a still is split by sample ranges, which only Cycles has; this scene "
                         "renders with %s (use --engine cycles, or render it without --split)"
                         % scene.render.engine)
    extra = compositor_extra(scene)
    if extra:
        raise SetupError("the scene's compositor uses nodes (%s) that would need per-range "
                         "passes; turn compositing off or render it without --split"
                         % ", ".join(extra[:5]))
    facts = {"engine": scene.render.engine, "samples": scene.cycles.samples,
             "adaptive": bool(scene.cycles.use_adaptive_sampling),
             "denoise": bool(scene.cycles.use_denoising), "compositor": False,
             "ranges": ranges}
    if scene.cycles.samples < ranges:
        raise SetupError("%d samples cannot be cut into %d ranges; give --samples or fewer "
                         "ranges (--split)" % (scene.cycles.samples, ranges))
    if scene.cycles.use_adaptive_sampling:
        # Adaptive sampling stops pixels early, per range: merged ranges would not be one render.
        scene.cycles.use_adaptive_sampling = False
        notes.append("adaptive sampling turned off: sample ranges must be equal everywhere")
    scene.cycles.use_animated_seed = False  # the same seed in every range: one sample sequence
    scene.render.image_settings.file_format = "OPEN_EXR_MULTILAYER"
    scene.render.image_settings.color_depth = "32"
    scene.render.use_compositing = False
    scene.render.use_sequencer = False
    if scene.cycles.use_denoising:
        # denoised once, after the merge, from the passes every range keeps
        scene.cycles.use_denoising = False
        for layer in scene.view_layers:
            layer.cycles.denoising_store_passes = True
    return facts


def merge_ranges(scene, job):
    """Merge the range EXRs of JOB ("inputs", "output", "denoise") pairwise with Cycles' own
    merge (each range weighted by the samples recorded in its header), then denoise where this
    Blender can and save OUTPUT with the scene's image settings."""
    inputs = job["inputs"]
    out = job["output"]
    merged = inputs[0]
    made = []
    try:
        for i, path in enumerate(inputs[1:]):
            step = "%s.merge-%d.exr" % (out, i)
            made.append(step)
            result = bpy.ops.cycles.merge_images(input_filepath1=merged, input_filepath2=path,
                                                 output_filepath=step)
            if "FINISHED" not in result or not os.path.exists(step):
                raise RuntimeError("Cycles could not merge %s and %s" % (merged, path))
            merged = step
        image = bpy.data.images.load(merged)
        if job.get("denoise") and oidn_available():
            denoise_and_save(scene, image, out)
        else:
            image.save_render(filepath=out, scene=scene)
    finally:
        for path in made:
            if os.path.exists(path):
                os.unlink(path)
    if not os.path.exists(out) or os.path.getsize(out) == 0:
        raise RuntimeError("the merged image %s was not written" % out)


def warm_merge(scene, job):
    """The merge command of a warm Blender loaded for the still's ranges: write the merged image
    with the image settings the scene had before the ranges' multilayer EXR, then go back."""
    if not isinstance(job, dict) or not isinstance(job.get("inputs"), list) or \
            not isinstance(job.get("output"), str):
        raise ValueError("merge command without a job")
    image = scene.render.image_settings
    ranges = (image.file_format, image.color_depth, image.color_mode)
    try:
        image.file_format = job.get("format") or ORIG_IMAGE.get("file_format", "PNG")
        if image.file_format == ORIG_IMAGE.get("file_format"):
            for key in ("color_depth", "color_mode"):
                try:
                    setattr(image, key, ORIG_IMAGE[key])
                except (KeyError, TypeError):
                    pass
        job.setdefault("denoise", bool(STILL.get("denoise")))
        if job["denoise"] and oidn_available():
            # the compositor is rebuilt to denoise: this Blender's scene is no longer the
            # ranges' scene, so it quits after answering (drender starts another if needed)
            QUIT_AFTER.append(True)
        merge_ranges(scene, job)
    finally:
        image.file_format, image.color_depth, image.color_mode = ranges


def denoise_and_save(scene, image, out):
    """Denoise IMAGE (a merged multilayer EXR with denoising passes) in the compositor and
    write OUTPUT: a node tree with no Render Layers node composites without rendering."""
    scene.use_nodes = True
    scene.render.use_compositing = True
    tree = scene.node_tree
    tree.nodes.clear()
    src = tree.nodes.new("CompositorNodeImage")
    src.image = image
    den = tree.nodes.new("CompositorNodeDenoise")
    comp = tree.nodes.new("CompositorNodeComposite")
    out_of = {s.name: s for s in src.outputs}
    tree.links.new(out_of.get("Noisy Image", out_of.get("Combined", src.outputs[0])),
                   den.inputs["Image"])
    for name, pas in (("Normal", "Denoising Normal"), ("Albedo", "Denoising Albedo")):
        if pas in out_of:
            tree.links.new(out_of[pas], den.inputs[name])
    tree.links.new(den.outputs[0], comp.inputs["Image"])
    scene.render.filepath = out
    scene.render.use_file_extension = False
    bpy.ops.render.render(write_still=True)


GPU_TYPES = ("OPTIX", "CUDA", "HIP", "ONEAPI")  # --device auto tries them in this order


def devices_seen():
    """What Blender sees, per GPU type: {"CUDA": [(name, id), ...], ...}, CPU left out."""
    try:
        import _cycles
    except ImportError:
        return {}
    seen = {}
    for kind in GPU_TYPES:
        try:
            found = _cycles.available_devices(kind)
        except Exception:  # a build without that backend
            found = ()
        seen[kind] = [(d[0], d[2]) for d in found if len(d) > 2 and d[1] == kind]
    return seen


def describe_seen(seen):
    """'CUDA: none; OPTIX: none; ...' or 'CUDA: NVIDIA A100, NVIDIA A100; ...'"""
    return "; ".join("%s: %s" % (kind, ", ".join(n for n, _ in seen.get(kind, [])) or "none")
                     for kind in GPU_TYPES)


def apply_device(scene, settings, notes):
    """Make Cycles render on the device asked for (settings "device", "gpu"); return what it will
    use, e.g. "CUDA:0 NVIDIA A100" or "CPU". A GPU type Blender does not see is a SetupError:
    never a quiet fall-back to CPU."""
    render = scene.render
    if settings.get("persistent_data") is not None:
        render.use_persistent_data = bool(settings["persistent_data"])
    wanted = (settings.get("device") or "").upper()
    if render.engine != "CYCLES":
        if wanted and wanted != "CPU" and wanted != "AUTO":
            notes.append("device %s ignored: engine %s does not use Cycles' devices"
                         % (wanted, render.engine))
        return "OpenGL (%s)" % render.engine
    if not wanted:  # the scene's setting
        if scene.cycles.device != "GPU":
            return "CPU"
        prefs = bpy.context.preferences.addons["cycles"].preferences
        used = [d.name for d in prefs.devices if d.use and d.type != "CPU"]
        return "GPU %s: %s" % (prefs.compute_device_type, ", ".join(used) or "none enabled")
    if wanted == "CPU":
        scene.cycles.device = "CPU"
        return "CPU"
    seen = devices_seen()
    index = settings.get("gpu")
    index = index if isinstance(index, int) else -1
    why = settings.get("gpu_why")
    if wanted == "AUTO":
        kinds = [k for k in GPU_TYPES if seen.get(k)]
        if not kinds or index < 0 or index >= len(seen[kinds[0]]):
            scene.cycles.device = "CPU"
            notes.append("device auto: CPU (%s)" % (
                why or ("Blender sees no GPU" if not kinds else
                        "GPU %d of %d %s is beyond the last" % (index, len(seen[kinds[0]]),
                                                                kinds[0]))))
            return "CPU"
        wanted = kinds[0]
    gpus = seen.get(wanted, [])
    if not gpus:
        raise SetupError("--device %s: Blender sees no %s device (what it sees: %s; CPU always)"
                         % (wanted.lower(), wanted, describe_seen(seen)))
    if index < 0:
        raise SetupError("--device %s: %s" % (wanted.lower(), why or "no GPU assigned"))
    if index >= len(gpus):
        raise SetupError(
            "--device %s: this render node is given %s GPU %d but Blender sees %d (%s): use "
            "--gpus-per-node %d to share, or fewer ranks"
            % (wanted.lower(), wanted, index, len(gpus), ", ".join(n for n, _ in gpus),
               len(gpus)))
    prefs = bpy.context.preferences.addons["cycles"].preferences
    try:
        prefs.compute_device_type = wanted
    except TypeError as exc:
        raise SetupError("--device %s: this Blender cannot use %s: %s"
                         % (wanted.lower(), wanted, exc))
    prefs.get_devices_for_type(wanted)
    chosen_id = gpus[index][1]
    chosen = None
    for d in prefs.devices:
        d.use = d.type == wanted and d.id == chosen_id and chosen is None
        if d.use:
            chosen = d
    if chosen is None:
        raise SetupError("--device %s: Blender lists %s but cannot enable it"
                         % (wanted.lower(), gpus[index][0]))
    scene.cycles.device = "GPU"
    gpu_threads = settings.get("gpu_threads") or 0
    if gpu_threads > 0:  # the GPU renders; the CPU only feeds it
        render.threads_mode = "FIXED"
        render.threads = gpu_threads
    return "%s:%d %s" % (wanted, index, chosen.name)


def peak_mb():
    """This process's peak resident memory in MiB (host memory; a GPU's own is not counted)."""
    try:
        import resource
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    except Exception:
        return 0


def render_result_image():
    """The image that holds the last render."""
    for image in bpy.data.images:
        if image.type == "RENDER_RESULT":
            return image
    raise RuntimeError("no Render Result image after rendering")


def render_frame(scene, frame, path):
    """Render FRAME, write it to exactly PATH with the scene's image settings; return seconds."""
    start = time.monotonic()
    # Remove any leftover so that the existence check below proves this render wrote the file.
    if os.path.lexists(path):
        os.unlink(path)
    scene.frame_set(frame)
    bpy.ops.render.render(write_still=False)
    # save_render applies the scene's output settings (format, colour management) and writes
    # the given path as is: no extension, no frame digits.
    render_result_image().save_render(filepath=path, scene=scene)
    seconds = time.monotonic() - start
    try:
        size = os.path.getsize(path)
    except OSError:
        raise RuntimeError(
            "render finished but %s was not written%s" % (path, why_unwritten(path)))
    if size == 0:
        raise RuntimeError("render finished but %s is empty%s" % (path, why_unwritten(path)))
    return seconds


THUMB_WIDTH = 160


def make_thumb(scene, path, thumb):
    """Write a THUMB_WIDTH px wide PNG preview of the frame at PATH to THUMB, with Blender's own
    image API: float images (EXR, HDR) are tone-mapped by the scene's colour management on
    save_render. Best effort: a preview that cannot be made is skipped, never an error."""
    img = None
    settings = scene.render.image_settings
    saved = (settings.file_format, settings.color_mode, settings.color_depth)
    try:
        if os.path.lexists(thumb):
            os.unlink(thumb)
        img = bpy.data.images.load(path, check_existing=False)
        width, height = img.size
        if width > THUMB_WIDTH and height > 0:
            img.scale(THUMB_WIDTH, max(1, round(height * THUMB_WIDTH / width)))
        settings.file_format = "PNG"
        settings.color_mode = "RGB"
        settings.color_depth = "8"
        img.save_render(filepath=thumb, scene=scene)
    except Exception as exc:  # pylint: disable=broad-except
        sys.stderr.write("drender driver: no thumbnail for %s: %s\n" % (path, exc))
        try:
            os.unlink(thumb)
        except OSError:
            pass
    finally:
        settings.file_format, settings.color_mode, settings.color_depth = saved
        if img is not None:
            bpy.data.images.remove(img)


def why_unwritten(path):
    """Blender's image writer fails silently: name the likely system error, if one shows."""
    folder = os.path.dirname(path) or "."
    try:
        st = os.statvfs(folder)
    except OSError as e:
        return " (%s: %s)" % (folder, e.strerror)
    if st.f_flag & os.ST_RDONLY:
        return " (%s: Read-only file system)" % folder
    if st.f_bavail * st.f_frsize < 1024 * 1024:
        free = st.f_bavail * st.f_frsize
        return " (No space left on device: %d bytes free in %s)" % (free, folder)
    if not os.access(folder, os.W_OK):
        return " (%s: Permission denied)" % folder
    return ""


# At most this many entries and about this many bytes in one "assets" list (drender reads a reply
# line of up to 1 MiB); the rest is summed up as "truncated", the missing files first.
ASSETS_MAX = 2000
ASSETS_BYTES = 512 * 1024


def asset_exists(kind, path, image=None):
    """True when the file (a directory for caches) that PATH names is there on this host."""
    if kind in ("point_cache", "fluid_cache"):
        return os.path.isdir(path)
    if image is not None and image.source == "TILED" and "<UDIM>" in path:
        return all(os.path.exists(path.replace("<UDIM>", str(t.number))) for t in image.tiles)
    return os.path.exists(path)


def list_assets():
    """Every external file the open scene refers to, as dicts: kind, name (the datablock), path
    (as the .blend says), abs (where this host looks), exists, packed. bpy.utils.blend_paths()
    names the paths but not who uses them, and in Blender 3.4 gives an empty path for a point
    cache baked to disk (measured: a baked cloth cache); the datablocks are walked here, and
    blend_paths() then catches whatever the walk missed (kind "other")."""
    found = []
    seen = set()
    dropped = [0]  # entries past ASSETS_MAX or ASSETS_BYTES
    size = [0]

    def add(kind, block, path, packed=False, lib=None, image=None):
        if not path or path == "<builtin>":
            return
        seen.add(path)
        full = os.path.normpath(bpy.path.abspath(path, library=lib))
        size[0] += len(path) + len(full) + len(block) + 100  # JSON escapes and keys: roughly
        if len(found) >= ASSETS_MAX or size[0] > ASSETS_BYTES:
            dropped[0] += 1
            return
        found.append({"kind": kind, "name": block, "path": path, "abs": full,
                      "packed": bool(packed),
                      "exists": bool(packed) or asset_exists(kind, full, image)})

    for img in bpy.data.images:
        if img.source in ("FILE", "SEQUENCE", "MOVIE", "TILED"):
            kind = {"SEQUENCE": "image_sequence", "MOVIE": "movie",
                    "TILED": "udim"}.get(img.source, "image")
            packed = img.packed_file is not None or len(getattr(img, "packed_files", ())) > 0
            add(kind, img.name_full, img.filepath, packed, img.library, img)
    for lib in bpy.data.libraries:
        add("library", lib.name, lib.filepath, lib.packed_file is not None, lib.parent)
    for font in bpy.data.fonts:
        add("font", font.name_full, font.filepath, font.packed_file is not None, font.library)
    for sound in bpy.data.sounds:
        add("sound", sound.name_full, sound.filepath, sound.packed_file is not None,
            sound.library)
    for clip in bpy.data.movieclips:
        add("movieclip", clip.name_full, clip.filepath, False, clip.library)
    for vol in bpy.data.volumes:
        add("volume", vol.name_full, vol.filepath, vol.packed_file is not None, vol.library)
    for cache in bpy.data.cache_files:
        add("cache", cache.name_full, cache.filepath, False, cache.library)
    for text in bpy.data.texts:
        if not text.is_in_memory:
            add("text", text.name_full, text.filepath, False, text.library)
    for scene in bpy.data.scenes:
        edit = scene.sequence_editor
        for strip in (edit.sequences_all if edit else ()):
            name = "%s (strip in %s)" % (strip.name, scene.name)
            if strip.type == "IMAGE":
                for elem in strip.elements:
                    add("strip", name, os.path.join(strip.directory, elem.filename), False,
                        scene.library)
            elif strip.type == "MOVIE":
                add("strip", name, strip.filepath, False, scene.library)
        world = scene.rigidbody_world
        if world and world.point_cache:
            point_cache("rigid body world of %s" % scene.name, world.point_cache, add)
    for ob in bpy.data.objects:
        for mod in ob.modifiers:
            name = "%s (modifier %s)" % (ob.name_full, mod.name)
            if getattr(mod, "point_cache", None) is not None:
                point_cache(name, mod.point_cache, add)
            if mod.type == "PARTICLE_SYSTEM" and mod.particle_system.point_cache:
                point_cache(name, mod.particle_system.point_cache, add)
            if mod.type == "DYNAMIC_PAINT" and mod.canvas_settings:
                for surface in mod.canvas_settings.canvas_surfaces:
                    point_cache(name, surface.point_cache, add)
            if mod.type == "FLUID" and mod.fluid_type == "DOMAIN":
                folder = mod.domain_settings.cache_directory
                if getattr(mod.domain_settings, "has_cache_baked_any", True):
                    add("fluid_cache", name, folder, False, ob.library)
                else:  # nothing baked: simulated while rendering, the folder is not needed
                    seen.add(folder)
            if mod.type == "MESH_CACHE":
                add("cache", name, mod.filepath, False, ob.library)
            if mod.type == "OCEAN" and mod.is_cached:
                add("point_cache", name, mod.filepath, False, ob.library)
    try:
        rest = bpy.utils.blend_paths(absolute=False, packed=False, local=False)
    except Exception:  # pylint: disable=broad-except
        rest = []
    for path in rest:
        if path not in seen:
            add("other", "", path)
    found.sort(key=lambda a: a["exists"])  # the missing first: a cut list keeps them
    return found, dropped[0] > 0


def point_cache(name, cache, add):
    """Report a point cache that lives on disk (external, or baked to disk)."""
    if cache.use_external:
        add("point_cache", name, cache.filepath, False)
    elif cache.use_disk_cache and cache.is_baked:
        blend = bpy.path.basename(bpy.data.filepath)
        folder = cache.filepath or ("//blendcache_%s" % os.path.splitext(blend)[0])
        add("point_cache", name, folder, False)


def pack_main():
    """--drender-pack JSON: pack everything the scene needs into it and save a copy at "output"
    (written by Blender, renamed into place by drender). What cannot be packed is listed on
    stderr as 'drender-unpackable: KIND<TAB>NAME<TAB>PATH' and the exit status is 3."""
    argv = sys.argv[sys.argv.index("--") + 1:]
    try:
        job = json.loads(argv[argv.index("--drender-pack") + 1])
        out = job["output"]
        before, _ = list_assets()
        if bpy.data.libraries:
            bpy.ops.file.pack_libraries()
        bpy.ops.file.pack_all()
        left, _ = list_assets()
        # packed, or stored inside the .blend anyway (texts); anything else stays outside
        left = [a for a in left if not a["packed"] and a["kind"] != "text"]
        if left:
            for a in left:
                sys.stderr.write("drender-unpackable: %s\t%s\t%s\n"
                                 % (a["kind"], a["name"], a["path"]))
            sys.stderr.flush()
            sys.exit(3)
        bpy.ops.wm.save_as_mainfile(filepath=out, copy=True, compress=False,
                                    relative_remap=False)
        if job.get("manifest"):  # what went in: a later run reuses the copy only if unchanged
            with open(job["manifest"], "w", encoding="utf-8") as f:
                for a in before:
                    if not a["packed"] and os.path.isfile(a["abs"]):
                        st = os.stat(a["abs"])
                        f.write("%d\t%d\t%s\n" % (st.st_size, st.st_mtime_ns, a["abs"]))
    except SystemExit:
        raise
    except Exception:  # pylint: disable=broad-except
        traceback.print_exc()
        sys.stderr.flush()
        sys.exit(1)
    sys.exit(0)


class Channel:
    """Line-oriented JSON over a pair of file descriptors."""

    def __init__(self, cmd_fd, reply_fd):
        self.cmd = os.fdopen(cmd_fd, "rb", buffering=0)
        self.reply_fd = reply_fd
        self.pending = b""

    def read_line(self):
        """Next complete line (bytes, without newline), or None at EOF. A trailing unterminated
        fragment at EOF is dropped: the writer went away mid-command."""
        while b"\n" not in self.pending:
            chunk = self.cmd.read(4096)
            if not chunk:
                return None
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line

    def send(self, obj):
        """Write one JSON object as a line, all of it, unbuffered."""
        data = (json.dumps(obj, separators=(",", ":")) + "\n").encode("utf-8")
        while data:
            written = os.write(self.reply_fd, data)
            data = data[written:]

    def close(self):
        self.cmd.close()
        os.close(self.reply_fd)


def serve(channel, scene):
    """Answer commands until "quit" or EOF."""
    while True:
        line = channel.read_line()
        if line is None:
            return
        line = line.strip()
        if not line:
            continue
        frame = -1
        try:
            cmd = json.loads(line.decode("utf-8"))
            if not isinstance(cmd, dict):
                raise ValueError("command is not a JSON object")
            if isinstance(cmd.get("frame"), int):
                frame = cmd["frame"]
            kind = cmd.get("cmd")
            if kind == "quit":
                return
            if kind == "merge":
                # a still's merge in this warm Blender: no start-up, no second scene load
                start = time.monotonic()
                warm_merge(scene, cmd.get("job"))
                channel.send({"event": "done", "frame": frame,
                              "seconds": round(time.monotonic() - start, 3),
                              "peak_mb": peak_mb()})
                if QUIT_AFTER:
                    return
                continue
            if kind != "render":
                raise ValueError("unknown command %r" % kind)
            path = cmd.get("path")
            if not isinstance(path, str) or not path:
                raise ValueError("render command without a path")
            if not isinstance(cmd.get("frame"), int):
                raise ValueError("render command without an integer frame")
            count = None
            if "ranges" in STILL:
                # a still split by samples: "frame" is the range's index
                offset, count = range_of(STILL["samples"], STILL["ranges"], frame)
                scene.cycles.sample_offset = offset
                scene.cycles.samples = count
                seconds = render_frame(scene, STILL["frame"], path)
            else:
                seconds = render_frame(scene, frame, path)
            thumb = cmd.get("thumb")  # optional: older drenders do not ask for one
            if isinstance(thumb, str) and thumb:
                make_thumb(scene, path, thumb)
        except Exception as exc:
            # The message first, then the traceback: readers that truncate keep what matters.
            message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            channel.send({"event": "error", "frame": frame,
                          "error": message + "\n" + traceback.format_exc()})
            continue
        done = {"event": "done", "frame": frame, "seconds": round(seconds, 3),
                "peak_mb": peak_mb()}
        if count is not None:
            done["samples"] = count  # a still's range: what rank 0 counts samples/s by
        channel.send(done)


STILL = {}  # a still split by samples: frame, ranges, samples (the scene's, before ranges)
ORIG_IMAGE = {}  # the scene's image settings before drender changed them (a warm merge's)
QUIT_AFTER = []  # set: quit after this command's answer


def merge_main():
    """--drender-merge JSON: merge the ranges, write the output, exit 0 (or 1 with the reason)."""
    argv = sys.argv[sys.argv.index("--") + 1:]
    try:
        job = json.loads(argv[argv.index("--drender-merge") + 1])
        scene = bpy.context.scene
        # denoised after the merge when the scene denoises (and this Blender can)
        job.setdefault("denoise", scene.render.engine == "CYCLES" and
                       bool(scene.cycles.use_denoising))
        apply_settings(scene, {"format": job.get("format"), "threads": job.get("threads")})
        scene.frame_set(job["frame"])
        merge_ranges(scene, job)
    except Exception:
        traceback.print_exc()
        sys.stderr.flush()
        sys.exit(1)
    sys.exit(0)


def main():
    channel = None
    if "--drender-merge" in sys.argv:
        merge_main()
    if "--drender-pack" in sys.argv:
        pack_main()
    try:
        cmd_fd, reply_fd, settings = parse_args(sys.argv)
        scene = bpy.context.scene
        image = scene.render.image_settings
        ORIG_IMAGE.update(file_format=image.file_format, color_depth=image.color_depth,
                          color_mode=image.color_mode)
        notes = apply_settings(scene, settings)
        if settings.get("ranges"):
            channel = Channel(cmd_fd, reply_fd)
            facts = apply_still(scene, settings, notes)
            STILL.update(facts, frame=settings.get("still", scene.frame_current))
        if channel is None:
            channel = Channel(cmd_fd, reply_fd)
        device = apply_device(scene, settings, notes)
    except Exception as exc:
        if channel is not None and isinstance(exc, SetupError):
            # drender reads this as a load failure that says why, not a crash
            try:
                channel.send({"event": "fatal", "error": str(exc)})
            except OSError:
                pass
        if isinstance(exc, SetupError):
            sys.stderr.write("drender driver: %s\n" % exc)
        else:
            traceback.print_exc()
        sys.stderr.flush()
        sys.exit(1)

    ready = {
        "event": "ready",
        "scene": scene.name,
        "engine": scene.render.engine,
        "frame_start": scene.frame_start,
        "frame_end": scene.frame_end,
        "device": device,
    }
    if notes:
        ready["notes"] = notes
    if STILL:
        ready["still"] = STILL
    if settings.get("assets"):
        try:
            ready["assets"], truncated = list_assets()
            if truncated:  # an entry of its own: drender reads one array
                ready["assets"].append({"kind": "truncated", "path": "", "exists": True})
        except Exception as exc:  # pylint: disable=broad-except
            # drender says the check could not be made; the render goes on
            ready["assets_error"] = "".join(
                traceback.format_exception_only(type(exc), exc)).strip()
    try:
        channel.send(ready)
        serve(channel, scene)
    except BrokenPipeError:
        pass  # drender went away: nothing left to answer, just exit
    finally:
        channel.close()


main()
