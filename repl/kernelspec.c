/* kernelspec.c -- finding kernel.json files and reading what they say.
 *
 * Only the fields a terminal client needs are read: argv, env and
 * interrupt_mode.  Env values may refer to the environment as ${NAME}, which is
 * expanded here as jupyter_client does; an unknown name expands to "".
 */
#include "kernelspec.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ strings */

void kernelspec_free_strv(char **v)
{
    if (v == NULL) {
        return;
    }
    for (char **p = v; *p != NULL; p++) {
        free(*p);
    }
    free(v);
}

/* Returns a malloc'd copy of s with every occurrence of key replaced by value. */
static char *replace_all(const char *s, const char *key, const char *value)
{
    size_t klen = strlen(key), vlen = strlen(value), n = 0;
    for (const char *p = strstr(s, key); p != NULL; p = strstr(p + klen, key)) {
        n++;
    }
    char *out = malloc(strlen(s) + n * (vlen + 1) + 1);
    if (out == NULL) {
        return NULL;
    }
    char *o = out;
    for (const char *p = s;;) {
        const char *hit = strstr(p, key);
        if (hit == NULL) {
            strcpy(o, p);
            break;
        }
        memcpy(o, p, (size_t)(hit - p));
        o += hit - p;
        memcpy(o, value, vlen);
        o += vlen;
        p = hit + klen;
    }
    return out;
}

/* Expands ${NAME} from the environment into a malloc'd "VAR=value" string. */
static char *env_entry(const char *var, const char *value)
{
    size_t cap = strlen(var) + strlen(value) + 2, len = 0;
    char *out = malloc(cap);
    if (out == NULL) {
        return NULL;
    }
    len = (size_t)sprintf(out, "%s=", var);
    for (const char *p = value; *p != '\0';) {
        const char *add = p;
        size_t add_len = 1;
        const char *close = p[0] == '$' && p[1] == '{' ? strchr(p + 2, '}') : NULL;
        if (close != NULL) {
            char name[256];
            size_t nlen = (size_t)(close - (p + 2));
            if (nlen < sizeof name) {
                memcpy(name, p + 2, nlen);
                name[nlen] = '\0';
                add = getenv(name) ? getenv(name) : "";
                add_len = strlen(add);
            } else {
                add_len = (size_t)(close - p + 1);
            }
            p = close + 1;
        } else {
            p++;
        }
        if (len + add_len + 1 > cap) {
            cap = 2 * (len + add_len + 1);
            char *bigger = realloc(out, cap);
            if (bigger == NULL) {
                free(out);
                return NULL;
            }
            out = bigger;
        }
        memcpy(out + len, add, add_len);
        len += add_len;
        out[len] = '\0';
    }
    return out;
}

/* -------------------------------------------------------------- search */

void kernelspec_destroy(kernelspec **spec)
{
    if (spec == NULL || *spec == NULL) {
        return;
    }
    free((*spec)->name);
    free((*spec)->resource_dir);
    kernelspec_free_strv((*spec)->argv);
    kernelspec_free_strv((*spec)->env);
    free(*spec);
    *spec = NULL;
}

/* Reads dir/kernel.json into a new spec; NULL with err set when unusable. */
static kernelspec *spec_load(const char *name, const char *dir, jp_error *err)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/kernel.json", dir) >= (int)sizeof path) {
        jp_error_set(err, "path too long: %s", dir);
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (root == NULL) {
        jp_error_set(err, "%s: %s", path, jerr.text);
        return NULL;
    }
    kernelspec *spec = calloc(1, sizeof *spec);
    json_t *argv = json_object_get(root, "argv");
    json_t *env = json_object_get(root, "env");
    const char *mode = json_string_value(json_object_get(root, "interrupt_mode"));
    if (spec == NULL || !json_is_array(argv) || json_array_size(argv) == 0) {
        jp_error_set(err, "%s: no argv list", path);
        goto fail;
    }
    spec->name = strdup(name);
    spec->resource_dir = strdup(dir);
    spec->interrupt_signal = mode == NULL || strcmp(mode, "message") != 0;
    spec->argv = calloc(json_array_size(argv) + 1, sizeof *spec->argv);
    spec->env =
        calloc((json_is_object(env) ? json_object_size(env) : 0) + 1, sizeof *spec->env);
    if (spec->name == NULL || spec->resource_dir == NULL || spec->argv == NULL ||
        spec->env == NULL) {
        jp_error_set(err, "out of memory");
        goto fail;
    }
    size_t i;
    json_t *v;
    json_array_foreach(argv, i, v)
    {
        if (!json_is_string(v) ||
            (spec->argv[i] = strdup(json_string_value(v))) == NULL) {
            jp_error_set(err, "%s: argv[%zu] is not a string", path, i);
            goto fail;
        }
    }
    if (json_is_object(env)) {
        const char *var;
        i = 0;
        json_object_foreach(env, var, v)
        {
            if (json_is_string(v)) {
                if ((spec->env[i] = env_entry(var, json_string_value(v))) == NULL) {
                    jp_error_set(err, "out of memory");
                    goto fail;
                }
                i++;
            }
        }
    }
    json_decref(root);
    return spec;
fail:
    json_decref(root);
    kernelspec_destroy(&spec);
    return NULL;
}

/* Writes the kernelspec search directories, in order, into dirs (each malloc'd);
 * returns how many. */
static size_t search_dirs(char **dirs, size_t max)
{
    size_t n = 0;
    char buf[PATH_MAX];
    const char *jp = getenv("JUPYTER_PATH");
    if (jp != NULL) {
        char *copy = strdup(jp);
        char *save = NULL;
        for (char *tok = copy ? strtok_r(copy, ":", &save) : NULL; tok != NULL && n < max;
             tok = strtok_r(NULL, ":", &save)) {
            snprintf(buf, sizeof buf, "%s/kernels", tok);
            dirs[n++] = strdup(buf);
        }
        free(copy);
    }
    const char *data = getenv("JUPYTER_DATA_DIR");
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    if (data != NULL && *data != '\0') {
        snprintf(buf, sizeof buf, "%s/kernels", data);
    } else if (xdg != NULL && *xdg != '\0') {
        snprintf(buf, sizeof buf, "%s/jupyter/kernels", xdg);
    } else {
        snprintf(buf, sizeof buf, "%s/.local/share/jupyter/kernels", home ? home : "");
    }
    if (n < max) {
        dirs[n++] = strdup(buf);
    }
    if (n < max) {
        dirs[n++] = strdup("/usr/local/share/jupyter/kernels");
    }
    if (n < max) {
        dirs[n++] = strdup("/usr/share/jupyter/kernels");
    }
    return n;
}

kernelspec *kernelspec_find(const char *name, jp_error *err)
{
    char *dirs[64];
    size_t n = search_dirs(dirs, sizeof dirs / sizeof dirs[0]);
    kernelspec *spec = NULL;
    jp_error first = {0};
    for (size_t i = 0; i < n && spec == NULL; i++) {
        char dir[PATH_MAX];
        struct stat st;
        if (dirs[i] == NULL) {
            continue;
        }
        snprintf(dir, sizeof dir, "%s/%s", dirs[i], name);
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
            spec = spec_load(name, dir, &first);
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(dirs[i]);
    }
    if (spec == NULL) {
        if (first.set) {
            jp_error_set(err, "%s", first.text);
        } else {
            jp_error_set(err, "no kernelspec named '%s' (see `jupyter kernelspec list`)",
                         name);
        }
    }
    return spec;
}

kernelspec *kernelspec_default(jp_error *err)
{
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL &&
            (size_t)(slash - exe) + sizeof "/ferry-kernel" < sizeof exe) {
            strcpy(slash, "/ferry-kernel");
            if (access(exe, X_OK) == 0) {
                kernelspec *spec = calloc(1, sizeof *spec);
                if (spec == NULL) {
                    jp_error_set(err, "out of memory");
                    return NULL;
                }
                spec->name = strdup("ferry");
                spec->interrupt_signal = 1;
                spec->argv = calloc(4, sizeof *spec->argv);
                spec->env = calloc(1, sizeof *spec->env);
                if (spec->argv != NULL) {
                    spec->argv[0] = strdup(exe);
                    spec->argv[1] = strdup("-f");
                    spec->argv[2] = strdup("{connection_file}");
                }
                if (spec->name == NULL || spec->env == NULL || spec->argv == NULL ||
                    !spec->argv[0] || !spec->argv[1] || !spec->argv[2]) {
                    kernelspec_destroy(&spec);
                    jp_error_set(err, "out of memory");
                }
                return spec;
            }
        }
    }
    jp_error find_err = {0};
    kernelspec *spec = kernelspec_find("ferry", &find_err);
    if (spec == NULL) {
        jp_error_set(err,
                     "no ferry kernel: neither ferry-kernel beside this program nor a "
                     "'ferry' kernelspec (%s); use --kernel NAME",
                     find_err.text);
    }
    return spec;
}

char **kernelspec_argv(const kernelspec *spec, const char *connection_file)
{
    size_t n = 0;
    while (spec->argv[n] != NULL) {
        n++;
    }
    char **out = calloc(n + 1, sizeof *out);
    if (out == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        char *a = replace_all(spec->argv[i], "{connection_file}", connection_file);
        char *b = a ? replace_all(a, "{resource_dir}",
                                  spec->resource_dir ? spec->resource_dir : "")
                    : NULL;
        free(a);
        if (b == NULL) {
            kernelspec_free_strv(out);
            return NULL;
        }
        out[i] = b;
    }
    return out;
}
