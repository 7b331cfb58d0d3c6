/* cluster/phi.c - phi accrual failure detection. */
#include "cluster/phi.h"

#include <math.h>
#include <string.h>

void kvi_phi_init(kvi_phi *p, const kvi_phi_config *cfg)
{
    memset(p, 0, sizeof *p);
    if (cfg)
        p->cfg = *cfg;
    if (p->cfg.threshold <= 0)
        p->cfg.threshold = 8.0;
    if (p->cfg.acceptable_pause_ms == 0)
        p->cfg.acceptable_pause_ms = 2000;
    if (p->cfg.min_stddev_ms == 0)
        p->cfg.min_stddev_ms = 200;
    if (p->cfg.first_interval_ms == 0)
        p->cfg.first_interval_ms = 1000;
    if (p->cfg.max_interval_ms == 0)
        p->cfg.max_interval_ms = 3000;
}

static void add_interval(kvi_phi *p, double ms)
{
    if (p->n == KVI_PHI_WINDOW) {
        double old = p->intervals[p->next];
        p->sum -= old;
        p->sum_sq -= old * old;
    } else {
        p->n++;
    }
    p->intervals[p->next] = ms;
    p->next = (p->next + 1) % KVI_PHI_WINDOW;
    p->sum += ms;
    p->sum_sq += ms * ms;
}

void kvi_phi_heartbeat(kvi_phi *p, uint64_t now_ms)
{
    if (p->last_ms == 0) {
        /* The first heartbeat: seed the window with the expected interval
         * (and a second around it) so phi means something at once. */
        double first = p->cfg.first_interval_ms;
        add_interval(p, first - first / 4);
        add_interval(p, first + first / 4);
    } else if (now_ms > p->last_ms && now_ms - p->last_ms <= p->cfg.max_interval_ms) {
        add_interval(p, (double)(now_ms - p->last_ms));
    }
    if (now_ms > p->last_ms)
        p->last_ms = now_ms;
}

double kvi_phi_value(const kvi_phi *p, uint64_t now_ms)
{
    if (p->last_ms == 0 || p->n == 0 || now_ms <= p->last_ms)
        return 0.0;
    double silence = (double)(now_ms - p->last_ms);
    double mean = p->sum / (double)p->n;
    double variance = p->sum_sq / (double)p->n - mean * mean;
    double stddev = variance > 0 ? sqrt(variance) : 0;
    if (stddev < p->cfg.min_stddev_ms)
        stddev = p->cfg.min_stddev_ms;
    mean += p->cfg.acceptable_pause_ms;
    double y = (silence - mean) / stddev;
    double e = exp(-y * (1.5976 + 0.070566 * y * y));
    double phi = silence > mean ? -log10(e / (1.0 + e)) : -log10(1.0 - 1.0 / (1.0 + e));
    return phi > 0 ? phi : 0.0;
}

int kvi_phi_suspect(const kvi_phi *p, uint64_t now_ms)
{
    return kvi_phi_value(p, now_ms) >= p->cfg.threshold;
}

void kvi_phi_forgive(kvi_phi *p, uint64_t pause_ms, uint64_t now_ms)
{
    if (p->last_ms == 0)
        return;
    p->last_ms = p->last_ms + pause_ms < now_ms ? p->last_ms + pause_ms : now_ms;
}
