/* Unit tests for dr_assets: parsing Blender's list of a scene's files, the verdicts and messages,
 * and the packed copy (against tests/fixtures/fake-blender). */
#include "dr_assets.h"
#include "tap.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char err[DR_ERRLEN];

static void test_parse(void)
{
	dr_assets a = {0};

	is_int(dr_assets_parse("[{\"kind\":\"image\",\"name\":\"checker.png\",\"path\":\"//tex/"
	                       "checker.png\",\"abs\":\"/s/tex/checker.png\",\"exists\":false,"
	                       "\"packed\":false},{\"kind\":\"font\",\"path\":\"/f.ttf\","
	                       "\"exists\":true}]",
	                       &a, err, sizeof err),
	       0, "a list parses");
	is_int(a.n, 2, "two entries");
	is_str(a.v[0].kind, "image", "kind");
	is_str(a.v[0].name, "checker.png", "datablock name");
	is_str(a.v[0].path, "//tex/checker.png", "path as the .blend says");
	is_str(a.v[0].abs, "/s/tex/checker.png", "where the node looked");
	ok(!a.v[0].exists && !a.v[0].packed, "missing, not packed");
	is_str(a.v[1].abs, "/f.ttf", "no abs: the path itself");
	is_str(a.v[1].name, "", "no name: empty");
	ok(!a.truncated, "not truncated");

	is_int(dr_assets_parse("[]", &a, err, sizeof err), 0, "an empty list parses");
	is_int(a.n, 0, "and is empty (the previous one was freed)");

	is_int(dr_assets_parse("[{\"kind\":\"image\",\"path\":\"//a.png\",\"exists\":true},"
	                       "{\"kind\":\"truncated\",\"path\":\"\",\"exists\":true}]",
	                       &a, err, sizeof err),
	       0, "a truncated list parses");
	ok(a.truncated && a.n == 1, "the marker sets truncated and is no file");

	is_int(dr_assets_parse("{\"kind\":\"image\"}", &a, err, sizeof err), -1,
	       "an object is not a list");
	ok(strstr(err, "not a JSON array") != NULL, "error says so: %s", err);
	is_int(a.n, 0, "nothing kept on failure");
	is_int(dr_assets_parse("[{\"kind\":\"image\",\"path\":\"x\"}]", &a, err, sizeof err), -1,
	       "an entry without exists is refused");
	ok(strstr(err, "without kind, path or exists") != NULL, "error says so: %s", err);
	is_int(dr_assets_parse("[1,2]", &a, err, sizeof err), -1, "numbers are no entries");
	is_int(dr_assets_parse("not json", &a, err, sizeof err), -1, "junk is refused");
	is_int(dr_assets_parse(NULL, &a, err, sizeof err), -1, "NULL is refused");
	dr_assets_free(&a);
	dr_assets_free(&a); /* twice is fine */
}

static void test_absolute(void)
{
	ok(dr_asset_path_absolute("/tex/a.png"), "/x is absolute");
	ok(!dr_asset_path_absolute("//tex/a.png"), "//x is relative to the .blend");
	ok(!dr_asset_path_absolute("tex/a.png"), "a bare relative path");
	ok(dr_asset_path_absolute("C:\\tex\\a.png"), "C:\\x is absolute");
	ok(dr_asset_path_absolute("d:/tex/a.png"), "d:/x is absolute");
	ok(dr_asset_path_absolute("\\\\server\\share\\a.png"), "a Windows share is absolute");
	ok(!dr_asset_path_absolute("C:"), "C: alone is not");
	ok(!dr_asset_path_absolute(""), "empty is not");
	ok(!dr_asset_path_absolute(NULL), "NULL is not");
}

static dr_asset mk(const char *kind, const char *path, bool exists, bool packed)
{
	dr_asset x = {
	        .path = (char *)path, .abs = (char *)path, .exists = exists, .packed = packed};
	snprintf(x.kind, sizeof x.kind, "%s", kind);
	snprintf(x.name, sizeof x.name, "%s", "block");
	return x;
}

static void test_verdict(void)
{
	dr_asset x;

	x = mk("image", "//a.png", false, false);
	is_int(dr_asset_verdict(&x), DR_ASSET_MISSING, "a missing image is missing");
	x = mk("image", "//a.png", false, true);
	is_int(dr_asset_verdict(&x), DR_ASSET_FINE, "a packed image is fine wherever its path");
	x = mk("image", "//a.png", true, false);
	is_int(dr_asset_verdict(&x), DR_ASSET_FINE, "a relative image that is there is fine");
	x = mk("image", "/abs/a.png", true, false);
	is_int(dr_asset_verdict(&x), DR_ASSET_ABSOLUTE, "an absolute one that is there warns");
	x = mk("image", "C:\\tex\\a.png", false, false);
	is_int(dr_asset_verdict(&x), DR_ASSET_MISSING, "a Windows path on Linux is missing");
	x = mk("library", "//lib.blend", false, false);
	is_int(dr_asset_verdict(&x), DR_ASSET_MISSING, "a missing library is missing");
	x = mk("text", "/scripts/x.py", false, false);
	is_int(dr_asset_verdict(&x), DR_ASSET_FINE, "a text's file does not matter (inside)");
	x = mk("point_cache", "//blendcache_x", false, false);
	is_int(dr_asset_verdict(&x), DR_ASSET_RESIMULATE, "a missing disk cache is resimulated");
	x = mk("fluid_cache", "//cache_fluid", false, false);
	is_int(dr_asset_verdict(&x), DR_ASSET_RESIMULATE, "so is a fluid cache");
	x = mk("cache", "//anim.abc", false, false);
	is_int(dr_asset_verdict(&x), DR_ASSET_MISSING, "a missing Alembic cache is missing");
	x = mk("strip", "//clip/0001.png", false, false);
	is_int(dr_asset_verdict(&x), DR_ASSET_MISSING, "a missing strip file is missing");
	x = mk("other", "//x.dat", false, false);
	is_int(dr_asset_verdict(&x), DR_ASSET_MISSING, "a missing file of no known kind too");
}

/* Count the lines of S. */
static int lines(const char *s)
{
	int n = *s ? 1 : 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void test_judge(void)
{
	dr_assets a = {0};
	char fatal[DR_ERRLEN], warn[DR_ERRLEN];
	dr_assets_summary s;

	is_int(dr_assets_parse(
	               "[{\"kind\":\"image\",\"name\":\"checker.png\",\"path\":\"//tex/"
	               "checker.png\","
	               "\"abs\":\"/s/tex/checker.png\",\"exists\":false},"
	               "{\"kind\":\"library\",\"name\":\"props.blend\",\"path\":\"//props.blend\","
	               "\"abs\":\"/s/props.blend\",\"exists\":false},"
	               "{\"kind\":\"font\",\"name\":\"Title\",\"path\":\"/usr/share/fonts/a.ttf\","
	               "\"exists\":true},"
	               "{\"kind\":\"image\",\"name\":\"packed.png\",\"path\":\"//gone.png\","
	               "\"exists\":false,\"packed\":true},"
	               "{\"kind\":\"point_cache\",\"name\":\"Cloth\",\"path\":\"//blendcache_s\","
	               "\"abs\":\"/s/blendcache_s\",\"exists\":false}]",
	               &a, err, sizeof err),
	       0, "the list parses");
	s = dr_assets_judge(&a, "nodeA", false, fatal, sizeof fatal, warn, sizeof warn);
	is_int(s.missing, 2, "two missing (the packed one is not)");
	is_int(s.resimulate, 1, "one cache to simulate again");
	is_int(s.absolute, 1, "one absolute path");
	ok(s.fatal, "missing files are fatal");
	ok(strncmp(fatal, "the scene needs 2 files that are missing on nodeA", 49) == 0,
	   "the head counts and names the host");
	ok(strstr(fatal, "--allow-missing") != NULL, "and says how to go on anyway");
	ok(strstr(fatal, "\n  image \"checker.png\": //tex/checker.png (not found at "
	                 "/s/tex/checker.png)") != NULL,
	   "a line names the datablock, the path and where it was looked for");
	ok(strstr(fatal, "\n  library \"props.blend\": //props.blend") != NULL,
	   "the library has its line");
	is_int(lines(fatal), 3, "one head line, one line per missing file");
	ok(strstr(fatal, "packed.png") == NULL && strstr(fatal, "Cloth") == NULL,
	   "packed files and caches are not in the fatal list");
	ok(dr_assets_missing_text(fatal), "the message is recognised as missing files");
	ok(!dr_assets_missing_text("Blender could not load x"), "another load error is not");
	ok(strstr(warn, "1 baked cache not found on nodeA") != NULL, "the cache warns");
	ok(strstr(warn, "1 file is referenced by an absolute path") != NULL &&
	           strstr(warn, "font \"Title\": /usr/share/fonts/a.ttf") != NULL,
	   "the absolute path warns with its line");

	s = dr_assets_judge(&a, "nodeA", true, fatal, sizeof fatal, warn, sizeof warn);
	ok(!s.fatal && s.missing == 2, "--allow-missing: not fatal, still counted");
	is_str(fatal, "", "no fatal message");
	ok(strstr(warn, "rendering without 2 missing files (--allow-missing) on nodeA") != NULL &&
	           strstr(warn, "checker.png") != NULL,
	   "the missing files become a warning");

	s = dr_assets_judge(&a, NULL, false, NULL, 0, NULL, 0);
	ok(s.fatal, "no buffers: still judged");
	dr_assets_free(&a);

	s = dr_assets_judge(&a, "h", false, fatal, sizeof fatal, warn, sizeof warn);
	ok(!s.fatal && !s.missing && !fatal[0] && !warn[0], "an empty list: nothing to say");
}

/* Many missing files: the message stays within its buffer and says how many it left out. */
static void test_many(void)
{
	dr_assets a = {0};
	char fatal[600], text[64 * 200 + 16];
	size_t pos = 0;
	dr_assets_summary s;

	dr_append(text, sizeof text, &pos, "[");
	for (int i = 0; i < 60; i++)
		dr_append(text, sizeof text, &pos,
		          "%s{\"kind\":\"image\",\"name\":\"t%d\",\"path\":\"//t/%03d.png\","
		          "\"exists\":false}",
		          i ? "," : "", i, i);
	dr_append(text, sizeof text, &pos, "]");
	is_int(dr_assets_parse(text, &a, err, sizeof err), 0, "60 entries parse");
	s = dr_assets_judge(&a, "h", false, fatal, sizeof fatal, NULL, 0);
	is_int(s.missing, 60, "60 missing");
	ok(strlen(fatal) < sizeof fatal - 1, "the message fits its buffer (%zu)", strlen(fatal));
	ok(strstr(fatal, "\n  image \"t0\": //t/000.png") != NULL, "the first file is listed");
	const char *more = strstr(fatal, "\n  ... and ");
	ok(more != NULL, "the rest is counted");
	if (more) {
		long left = strtol(more + 11, NULL, 10);
		is_int(left + lines(fatal) - 2, 60, "listed + left out = 60");
	}
	dr_assets_free(&a);
}

/* ---- the packed copy, against the fake Blender ---- */

static char dir[128], fake[2048];

static int count_files(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.' || (e->d_name[1] && e->d_name[1] != '.');
	if (d)
		closedir(d);
	return n;
}

static void test_pack(void)
{
	char scene[256], out[256], bad[256], cmp[256];
	FILE *f;

	snprintf(scene, sizeof scene, "%s/scene.blend", dir);
	snprintf(out, sizeof out, "%s/packed/scene.blend", dir);
	snprintf(bad, sizeof bad, "%s/notblend.blend", dir);
	snprintf(cmp, sizeof cmp, "%s/packed", dir);
	mkdir(cmp, 0700);
	f = fopen(scene, "w");
	fputs("BLENDER-v304 fake scene\n", f);
	fclose(f);
	f = fopen(bad, "w");
	fputs("not a blend\n", f);
	fclose(f);

	unsetenv("FAKE_BLENDER_UNPACKABLE");
	is_int(dr_assets_pack(fake, scene, out, err, sizeof err), 0, "a scene packs: %s", err);
	f = fopen(out, "r");
	char buf[64] = "";
	ok(f && fgets(buf, sizeof buf, f), "the copy is there");
	if (f)
		fclose(f);
	is_str(buf, "BLENDER-v304 fake scene\n", "with the scene's bytes");
	is_int(count_files(cmp), 1, "and nothing else (no temporary left)");

	unlink(out);
	setenv("FAKE_BLENDER_UNPACKABLE", "movieclip://clips/shot.mov,cache:/abs/sim.abc", 1);
	is_int(dr_assets_pack(fake, scene, out, err, sizeof err), -1,
	       "files Blender cannot pack fail the copy");
	ok(strstr(err, "cannot make a self-contained copy") != NULL, "error says why");
	ok(strstr(err, "\n  movieclip \"shot.mov\": //clips/shot.mov") != NULL &&
	           strstr(err, "\n  cache \"sim.abc\": /abs/sim.abc") != NULL,
	   "one line per file that cannot be packed");
	is_int(count_files(cmp), 0, "nothing left where the copy would go");
	unsetenv("FAKE_BLENDER_UNPACKABLE");

	is_int(dr_assets_pack(fake, bad, out, err, sizeof err), -1, "a file Blender cannot read");
	ok(strstr(err, "wrote nothing") != NULL && strstr(err, "Cannot read file") != NULL,
	   "error quotes Blender: %s", err);
	is_int(count_files(cmp), 0, "nothing left");

	snprintf(bad, sizeof bad, "%s/none.blend", dir);
	is_int(dr_assets_pack(fake, bad, out, err, sizeof err), -1, "a scene that is not there");
	ok(strstr(err, "cannot read the scene") != NULL, "error says so: %s", err);
	is_int(dr_assets_pack("/nonexistent/blender", scene, out, err, sizeof err), -1,
	       "a Blender that is not there");
	ok(strstr(err, "not found") != NULL, "error says so: %s", err);
	snprintf(bad, sizeof bad, "%s/no/such/dir/scene.blend", dir);
	is_int(dr_assets_pack(fake, scene, bad, err, sizeof err), -1,
	       "a copy into a directory that is not there");
	is_int(dr_assets_pack(fake, scene, "", err, sizeof err), -1, "no output path");

	unlink(scene);
	unlink(out);
	snprintf(bad, sizeof bad, "%s/notblend.blend", dir);
	unlink(bad);
	rmdir(cmp);
}

int main(void)
{
	const char *exe = getenv("DR_FAKE_BLENDER");
	char cwd[1024];

	test_parse();
	test_absolute();
	test_verdict();
	test_judge();
	test_many();

	if (exe)
		snprintf(fake, sizeof fake, "%s", exe);
	else if (getcwd(cwd, sizeof cwd))
		snprintf(fake, sizeof fake, "%s/tests/fixtures/fake-blender", cwd);
	snprintf(dir, sizeof dir, "/tmp/drender-test-assets-XXXXXX");
	if (!mkdtemp(dir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	test_pack();
	if (rmdir(dir) != 0)
		printf("# could not remove %s: %s\n", dir, strerror(errno));
	return done_testing();
}
