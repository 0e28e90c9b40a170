/* `cairn train [CONFIG.yaml] [--set key.path=value ...]` */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/fortune_corpus.h"
#include "data/tokenizer.h"
#include "parallel/launch.h"
#include "train/cli.h"
#include "train/config.h"
#include "train/device.h"
#include "train/signals.h"
#include "train/trainer.h"

static const char train_usage[] = "usage: cairn train [CONFIG.yaml] [--set key.path=value ...]\n";

static double wall_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void format_duration(double seconds, char *out, size_t size) {
    long s = (long)(seconds + 0.5);
    if (s >= 3600) snprintf(out, size, "%ldh%02ldm", s / 3600, s / 60 % 60);
    else if (s >= 60) snprintf(out, size, "%ldm%02lds", s / 60, s % 60);
    else snprintf(out, size, "%lds", s);
}

static void format_rate(double per_second, char *out, size_t size) {
    if (per_second >= 1e6) snprintf(out, size, "%.2fM", per_second / 1e6);
    else if (per_second >= 1e3) snprintf(out, size, "%.1fk", per_second / 1e3);
    else snprintf(out, size, "%.0f", per_second);
}

static void format_bytes(double bytes, char *out, size_t size) {
    if (bytes >= 1024.0 * 1024 * 1024) snprintf(out, size, "%.1f GiB", bytes / (1024.0 * 1024 * 1024));
    else snprintf(out, size, "%.0f MiB", bytes / (1024.0 * 1024));
}

static void print_note(void *context, const char *message) {
    (void)context;
    printf("cairn: %s\n", message);
    fflush(stdout);
}

/* An error line; with several ranks it says which one. The line goes out in one fprintf (one
 * write on the unbuffered stderr): a rank killed by another rank's abort between a prefix and
 * its message would leave mpirun a prefix glued to the abort banner. */
static void print_error(const parallel_process *p, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
static void print_error(const parallel_process *p, const char *format, ...) {
    char message[2048];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    if (p->size > 1)
        fprintf(stderr, "cairn train (rank %d of %d): %s\n", p->rank, p->size, message);
    else fprintf(stderr, "cairn train: %s\n", message);
}

/* Saves after t->step; prints where. Returns 0 or the exit status. */
static int save_checkpoint(trainer *t, const parallel_process *p) {
    char path[CONFIG_STRING + 64];
    status st = {{0}};
    double start = wall_seconds();
    if (trainer_save_checkpoint(t, path, sizeof path, &st) != 0) {
        print_error(p, "step %lld: checkpoint: %s", (long long)t->step, st.message);
        return 1;
    }
    if (t->reporter) {
        printf("cairn: checkpoint %s (%.1fs)\n", path, wall_seconds() - start);
        fflush(stdout);
    }
    return 0;
}

/* Reads the command line into a config; returns 0, or the exit status. */
static int load_config(int argc, char **argv, config *c, int *is_default, status *st) {
    config_defaults(c);
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--set") == 0) {
            if (++i == argc) {
                fprintf(stderr, "cairn train: --set needs key.path=value\n%s", train_usage);
                return 2;
            }
        } else if (strncmp(argv[i], "--set=", 6) == 0) {
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "cairn train: unknown option '%s'\n%s", argv[i], train_usage);
            return 2;
        } else if (file) {
            fprintf(stderr, "cairn train: more than one config file ('%s', '%s')\n%s", file,
                    argv[i], train_usage);
            return 2;
        } else {
            file = argv[i];
        }
    }
    *is_default = file == NULL;
    if (file && config_load_file(c, file, st) != 0) return 1;
    for (int i = 1; i < argc; i++) {
        const char *assignment = NULL;
        if (strcmp(argv[i], "--set") == 0) assignment = argv[++i];
        else if (strncmp(argv[i], "--set=", 6) == 0) assignment = argv[i] + 6;
        if (assignment && config_apply_set(c, assignment, st) != 0) return 1;
    }
    return 0;
}

/* The training run of this rank; returns the exit status. */
static int train_rank(int argc, char **argv, config *cp, int is_default, const parallel_process *p) {
    status st = {{0}};
    config c = *cp;
    /* the vocabulary and EOD come from the tokenizer unless the config says */
    tokenizer *tok = NULL;
    if (c.data.tokenizer[0]) {
        if (tokenizer_open(c.data.tokenizer, &tok, &st) != 0) {
            print_error(p, "data.tokenizer: %s", st.message);
            return 1;
        }
        if (c.model.vocab == 0) c.model.vocab = tokenizer_vocab_size(tok);
        if (c.data.eod_id < 0) c.data.eod_id = tokenizer_eod_id(tok);
    }
    if (config_resolve(&c, p->size, &st) != 0) {
        print_error(p, "%s", st.message);
        tokenizer_close(tok);
        return 1;
    }
    /* the built-in run makes its corpus once (rank 0), unless --set pointed it elsewhere */
    config defaults;
    config_defaults(&defaults);
    if (is_default && c.data.source_count == 1 &&
        strcmp(c.data.sources[0].path, defaults.data.sources[0].path) == 0) {
        int failed = p->rank == 0 && fortune_corpus_ensure(c.data.sources[0].path, c.data.valid,
                                                           &st) != 0;
        if (failed) print_error(p, "default corpus: %s", st.message);
        if (p->size > 1 && parallel_barrier(&st) != 0) failed = 1;
        if (failed) {
            tokenizer_close(tok);
            return 1;
        }
    }
    const ops *o;
    char device[256];
    if (device_select(c.device, p->local_rank, &o, device, sizeof device, &st) != 0) {
        print_error(p, "%s", st.message);
        tokenizer_close(tok);
        return 1;
    }
    char command_line[4096] = "cairn";
    for (int i = 0; i < argc; i++) {
        strncat(command_line, " ", sizeof command_line - strlen(command_line) - 1);
        strncat(command_line, argv[i], sizeof command_line - strlen(command_line) - 1);
    }
    if (signals_install(&st) != 0) {
        print_error(p, "%s", st.message);
        tokenizer_close(tok);
        return 1;
    }
    trainer t;
    if (trainer_open(&t, &c, o, device, command_line, tok ? tokenizer_checksum(tok) : NULL,
                     print_note, NULL, &st) != 0) {
        print_error(p, "%s", st.message);
        trainer_close(&t);
        tokenizer_close(tok);
        return 1;
    }
    tokenizer_close(tok);
    int report = t.reporter;

    if (report) {
        printf("cairn: training %s (%s, %d layers, d_model %d, %.2fM parameters) on %s\n",
               c.run.name, config_arch_name(c.model.arch), c.model.layers, c.model.d_model,
               (double)t.model.total_params / 1e6, device);
        if (p->size > 1)
            printf("cairn: %d ranks: dp %d x tp %d x pp %d (ep %d)%s; this rank holds %.2fM "
                   "parameters\n",
                   p->size, t.dp_size, c.parallel.tp, c.parallel.pp, c.parallel.ep,
                   t.use_zero ? ", ZeRO-1" : "", (double)t.model.total_params / 1e6);
        printf("cairn: %lld steps of %d sequences x %d tokens; data: %s%s (%lld tokens)\n",
               (long long)c.run.steps, c.train.global_batch, c.model.seq_len,
               c.data.sources[0].path, c.data.source_count > 1 ? " and more" : "",
               (long long)data_loader_total_tokens(t.loader));
        printf("cairn: outputs in %s/ (config.yaml, run.json, metrics.jsonl, checkpoints in %s/)\n",
               c.run.out_dir, c.checkpoint.dir);
    }
    if (t.step >= c.run.steps) {
        if (report)
            printf("cairn: nothing to train: the checkpoint is at step %lld of %lld\n",
                   (long long)t.step, (long long)c.run.steps);
        trainer_close(&t);
        return 0;
    }
    fflush(stdout);

    double start = wall_seconds(), first_loss = NAN, last_loss = NAN;
    double first_val = NAN, last_val = NAN;
    int64_t val_tokens;
    if (t.has_validation && trainer_evaluate(&t, &first_val, &val_tokens, &st) != 0) {
        print_error(p, "validation: %s", st.message);
        trainer_close(&t);
        return 1;
    }
    trainer_step_result r = {0};
    for (int64_t step = t.step + 1; step <= c.run.steps; step++) {
        if (trainer_step(&t, &r, &st) != 0) {
            print_error(p, "step %lld: %s", (long long)step, st.message);
            trainer_close(&t);
            return 1;
        }
        if (step == t.start_step + 1) first_loss = r.loss;
        last_loss = r.loss;
        if (!isfinite(r.loss)) {
            print_error(p, "step %lld: loss is %f; stopping", (long long)step, r.loss);
            trainer_close(&t);
            return 1;
        }
        int evaluate = t.has_validation && ((c.run.eval_every > 0 && step % c.run.eval_every == 0) ||
                                   step == c.run.steps);
        double val = NAN;
        if (evaluate) {
            if (trainer_evaluate(&t, &val, &val_tokens, &st) != 0) {
                print_error(p, "step %lld: validation: %s", (long long)step, st.message);
                trainer_close(&t);
                return 1;
            }
            last_val = val;
        }
        double elapsed = wall_seconds() - start;
        if (report && (step % c.run.log_every == 0 || step == 1 || step == c.run.steps || evaluate)) {
            trainer_write_metrics(&t, &r, elapsed, val);
            char eta[32], rate[32], val_text[48] = "";
            format_duration(elapsed / (double)(step - t.start_step) * (double)(c.run.steps - step),
                            eta, sizeof eta);
            double tok_per_s = (double)c.train.global_batch * c.model.seq_len / r.seconds;
            format_rate(tok_per_s, rate, sizeof rate);
            if (evaluate) snprintf(val_text, sizeof val_text, " | val %.4f", val);
            double mfu = trainer_mfu(&t, tok_per_s);
            char mfu_text[32] = "", memory[32];
            if (!isnan(mfu)) snprintf(mfu_text, sizeof mfu_text, " | MFU %.1f%%", 100 * mfu);
            format_bytes((double)r.peak_memory, memory, sizeof memory);
            printf("step %*lld/%lld | loss %.4f%s | lr %.2e | gnorm %.3f | %s tok/s%s | mem %s | "
                   "ETA %s\n",
                   (int)log10((double)c.run.steps) + 1, (long long)step, (long long)c.run.steps,
                   r.loss, val_text, r.lr, r.grad_norm, rate, mfu_text, memory, eta);
            fflush(stdout);
        }
        int stop = step < c.run.steps ? trainer_stop_requested(&t) : 0;
        if ((c.checkpoint.every > 0 && step % c.checkpoint.every == 0) || stop ||
            (step == c.run.steps && c.checkpoint.at_end)) {
            if (save_checkpoint(&t, p) != 0) {
                trainer_close(&t);
                return 1;
            }
        }
        if (stop) {
            if (report)
                printf("cairn: stopped by %s after step %lld of %lld; run the same command to "
                       "continue\n",
                       signals_name(stop), (long long)step, (long long)c.run.steps);
            trainer_close(&t);
            return 0;
        }
    }
    if (report) {
        char took[32];
        format_duration(wall_seconds() - start, took, sizeof took);
        printf("cairn: done in %s: loss %.4f -> %.4f", took, first_loss, last_loss);
        if (t.has_validation) printf(", validation loss %.4f -> %.4f", first_val, last_val);
        printf(" (%lld tokens)\ncairn: metrics in %s/metrics.jsonl, provenance in %s/run.json\n",
               (long long)t.tokens, c.run.out_dir, c.run.out_dir);
    }
    trainer_close(&t);
    return 0;
}

int cli_train(int argc, char **argv) {
    status st = {{0}};
    config c;
    int is_default = 0;
    int rc = load_config(argc, argv, &c, &is_default, &st);
    if (rc) {
        if (rc == 1) fprintf(stderr, "cairn train: %s\n", st.message);
        return rc;
    }
    /* MPI only when a launcher started several ranks: a lone process needs none of it */
    parallel_process p;
    if (!parallel_launched()) {
        parallel_single(&p);
    } else if (parallel_init(NULL, NULL, &p, &st) != 0) {
        fprintf(stderr, "cairn train: %s\n", st.message);
        return 1;
    }
    rc = train_rank(argc, argv, &c, is_default, &p);
    /* a rank that fails after the others started would leave them waiting in a collective */
    if (rc != 0 && p.size > 1) parallel_abort(rc);
    parallel_finalize(&p);
    return rc;
}
