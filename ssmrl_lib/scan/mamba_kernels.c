/* Mamba's two elementwise-heavy ops as C kernels: the gated selective scan and the causal
   depthwise convolution (+ SiLU), forward and backward. Built and loaded by c_kernels.py.

   Why C: per element and step the scan is an exp, two multiply-adds and a dot product, and a
   loop of torch ops pays a pass through memory for each (about fifteen per step with the
   backward). One C loop per sequence keeps the [N][D] state in L1 cache and vectorises the exp
   (a polynomial, below): several times faster than the best torch version. Fusing the softplus
   of delta, the D skip, the SiLU gate and the padding mask into the same loops removes a dozen
   more [B][L][D] passes per layer. The backward does not keep the [B][L][N][D] states of the
   forward: each sequence's are recomputed into a per-thread buffer and walked in reverse, so
   training memory stays O(B L D).

   Plain C99 with a C ABI (no torch headers, so it builds in about a second); batch rows are
   shared out over OpenMP threads when the compiler has OpenMP. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* exp(v) = 2^k exp(r) with |r| <= ln2/2 and a degree-7 Taylor polynomial for exp(r), within
   2 ulp of expf and written so the compiler vectorises it. v < -87 gives exactly 0, so no
   denormals (~100x slower) enter the recurrence. */
static inline float exp_approx(float v) {
    float clamped = v < -87.0f ? -87.0f : (v > 88.0f ? 88.0f : v);
    float k = __builtin_rintf(clamped * 1.44269504088896341f);
    float r = __builtin_fmaf(k, -0.693145751953125f, clamped);
    r = __builtin_fmaf(k, -1.42860682030941723e-06f, r);
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return v < -87.0f ? 0.0f : p * scale;
}

static inline float sigmoid(float v) { return 1.0f / (1.0f + exp_approx(-v)); }

/* d silu(v) / dv with s = sigmoid(v) */
static inline float silu_grad(float v, float s) { return s * (1.0f + v * (1.0f - s)); }

/* softplus(v) = max(v, 0) + log1p(exp(-|v|)), with log1p(u) = 2 atanh(u / (2 + u)) summed as
   its odd series (u / (2 + u) <= 1/3, so seven terms reach float precision; within 2 ulp). */
static inline float softplus(float v) {
    float u = exp_approx(v < 0.0f ? v : -v);
    float s = u / (2.0f + u), s2 = s * s;
    float p = 1.0f / 13.0f;
    p = p * s2 + 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return (v > 0.0f ? v : 0.0f) + 2.0f * s * p;
}

/* Layouts (row-major, one batch chunk): x, dt, z, y, out and their gradients
   [batch][length][channels]; a_t (A transposed) [nstate][channels]; b, c [batch][length][nstate];
   w_t (conv weight transposed) [kernel][channels]; mask [batch][length] or NULL.
   Gradients of parameters shared across the batch (a_t, d_skip, w_t, bias) are accumulated
   (+=), every other output is written. Batch rows are shared out over OpenMP threads (when
   compiled with it), each with its own scratch. Each function returns 0, or 1 if out of
   memory. */

/* y_t = C_t . h_t + D x_t with h_t = exp(delta_t A) h_{t-1} + delta_t x_t B_t, h_{-1} = 0 and
   delta = softplus(dt); out_t = y_t silu(z_t). */
int scan_forward(long batch, long length, long channels, long nstate, const float *x,
                 const float *dt, const float *a_t, const float *b, const float *c,
                 const float *d_skip, const float *z, float *y, float *out) {
    int failed = 0;
#pragma omp parallel
    {
        float *h = malloc(sizeof(float) * nstate * channels);
        float *delta = malloc(sizeof(float) * channels);
        if (!h || !delta) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (long i = 0; i < batch; i++) {
            if (!h || !delta) continue;
            memset(h, 0, sizeof(float) * nstate * channels);
            for (long t = 0; t < length; t++) {
                long row = i * length + t;
                const float *dtt = dt + row * channels, *xt = x + row * channels;
                const float *zt = z + row * channels, *bt = b + row * nstate;
                const float *ct = c + row * nstate;
                float *yt = y + row * channels, *ot = out + row * channels;
                for (long d = 0; d < channels; d++) {
                    delta[d] = softplus(dtt[d]);
                    yt[d] = d_skip[d] * xt[d];
                }
                for (long n = 0; n < nstate; n++) {
                    float *hn = h + n * channels;
                    const float *an = a_t + n * channels;
                    const float bn = bt[n], cn = ct[n];
                    for (long d = 0; d < channels; d++) {
                        hn[d] = exp_approx(delta[d] * an[d]) * hn[d] + delta[d] * xt[d] * bn;
                        yt[d] += cn * hn[d];
                    }
                }
                for (long d = 0; d < channels; d++) ot[d] = yt[d] * zt[d] * sigmoid(zt[d]);
            }
        }
        free(h);
        free(delta);
    }
    return failed;
}

/* One sequence's delta_t [channels], states h_t and decays exp(delta_t A) [nstate][channels]. */
static void recompute_states(long length, long channels, long nstate, const float *x,
                             const float *dt, const float *a_t, const float *b, float *delta,
                             float *states, float *decays) {
    long size = nstate * channels;
    for (long t = 0; t < length; t++) {
        const float *xt = x + t * channels, *bt = b + t * nstate;
        float *deltat = delta + t * channels;
        for (long d = 0; d < channels; d++) deltat[d] = softplus(dt[t * channels + d]);
        for (long n = 0; n < nstate; n++) {
            const float *an = a_t + n * channels;
            float *hn = states + t * size + n * channels;
            float *decayn = decays + t * size + n * channels;
            for (long d = 0; d < channels; d++) {
                decayn[d] = exp_approx(deltat[d] * an[d]);
                hn[d] = deltat[d] * xt[d] * bt[n];
            }
            if (t > 0) {
                const float *prevn = hn - size;
                for (long d = 0; d < channels; d++) hn[d] += decayn[d] * prevn[d];
            }
        }
    }
}

/* Reverse recurrence dh_t = C_t gy_t + exp(delta_{t+1} A) dh_{t+1}, gy = grad_out silu(z). */
int scan_backward(long batch, long length, long channels, long nstate, const float *x,
                  const float *dt, const float *a_t, const float *b, const float *c,
                  const float *d_skip, const float *z, const float *y, const float *grad_out,
                  float *grad_x, float *grad_dt, float *grad_a_t, float *grad_b,
                  float *grad_c, float *grad_d_skip, float *grad_z) {
    long size = nstate * channels;
    int failed = 0;
#pragma omp parallel
    {
        float *delta = malloc(sizeof(float) * length * channels);
        float *states = malloc(sizeof(float) * length * size);
        float *decays = malloc(sizeof(float) * length * size);
        float *carried = malloc(sizeof(float) * size); /* exp(delta_{t+1} A) dh_{t+1} */
        float *zeros = calloc(size, sizeof(float));    /* h_{-1} */
        float *grad_y = malloc(sizeof(float) * channels);
        float *grad_dx = malloc(sizeof(float) * channels);       /* w.r.t. delta_t x_t */
        float *grad_exponent = malloc(sizeof(float) * channels); /* via exp(delta_t A) */
        int ok = delta && states && decays && carried && zeros && grad_y && grad_dx &&
                 grad_exponent;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static) reduction(+ : grad_a_t[:size], grad_d_skip[:channels])
        for (long i = 0; i < batch; i++) {
            if (!ok) continue;
            long base = i * length;
            const float *xi = x + base * channels, *dti = dt + base * channels;
            const float *bi = b + base * nstate, *ci = c + base * nstate;
            recompute_states(length, channels, nstate, xi, dti, a_t, bi, delta, states, decays);
            memset(carried, 0, sizeof(float) * size);
            for (long t = length - 1; t >= 0; t--) {
                long row = base + t;
                const float *deltat = delta + t * channels, *xt = xi + t * channels;
                const float *zt = z + row * channels, *yt = y + row * channels;
                const float *go = grad_out + row * channels;
                const float *h = states + t * size, *prev = t > 0 ? h - size : zeros;
                const float *decay = decays + t * size;
                float *gz = grad_z + row * channels;
                for (long d = 0; d < channels; d++) {
                    float s = sigmoid(zt[d]);
                    grad_y[d] = go[d] * zt[d] * s;
                    gz[d] = go[d] * yt[d] * silu_grad(zt[d], s);
                    grad_d_skip[d] += grad_y[d] * xt[d];
                    grad_dx[d] = 0.0f;
                    grad_exponent[d] = 0.0f;
                }
                for (long n = 0; n < nstate; n++) {
                    const float bn = bi[t * nstate + n], cn = ci[t * nstate + n];
                    const float *an = a_t + n * channels, *hn = h + n * channels;
                    const float *prevn = prev + n * channels, *decayn = decay + n * channels;
                    float *carriedn = carried + n * channels, *grad_an = grad_a_t + n * channels;
                    float grad_bn = 0.0f, grad_cn = 0.0f;
                    for (long d = 0; d < channels; d++) {
                        float dh = cn * grad_y[d] + carriedn[d];
                        grad_dx[d] += bn * dh;
                        grad_bn += deltat[d] * xt[d] * dh;
                        grad_cn += grad_y[d] * hn[d];
                        carriedn[d] = decayn[d] * dh;
                        float grad_decay_exponent = carriedn[d] * prevn[d];
                        grad_exponent[d] += grad_decay_exponent * an[d];
                        grad_an[d] += grad_decay_exponent * deltat[d];
                    }
                    grad_b[row * nstate + n] = grad_bn;
                    grad_c[row * nstate + n] = grad_cn;
                }
                const float *dtt = dti + t * channels;
                float *gx = grad_x + row * channels, *gdt = grad_dt + row * channels;
                for (long d = 0; d < channels; d++) {
                    gx[d] = grad_dx[d] * deltat[d] + grad_y[d] * d_skip[d];
                    gdt[d] = (grad_dx[d] * xt[d] + grad_exponent[d]) * sigmoid(dtt[d]);
                }
            }
        }
        free(delta);
        free(states);
        free(decays);
        free(carried);
        free(zeros);
        free(grad_y);
        free(grad_dx);
        free(grad_exponent);
    }
    return failed;
}

/* Causal depthwise convolution of row t: bias + sum_j w_j x_{t-kernel+1+j} (zeros before 0). */
static void conv_row(long t, long channels, long kernel, const float *x, const float *w_t,
                     const float *bias, float *pre) {
    for (long d = 0; d < channels; d++) pre[d] = bias[d];
    for (long j = 0; j < kernel; j++) {
        long source = t - (kernel - 1) + j;
        if (source < 0) continue;
        const float *xs = x + source * channels, *wj = w_t + j * channels;
        for (long d = 0; d < channels; d++) pre[d] += wj[d] * xs[d];
    }
}

/* out = mask * silu(conv(x)) */
int conv_forward(long batch, long length, long channels, long kernel, const float *x,
                 const float *w_t, const float *bias, const float *mask, float *out) {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < batch; i++) {
        const float *xi = x + i * length * channels;
        for (long t = 0; t < length; t++) {
            float *o = out + (i * length + t) * channels;
            float m = mask ? mask[i * length + t] : 1.0f;
            conv_row(t, channels, kernel, xi, w_t, bias, o);
            for (long d = 0; d < channels; d++) o[d] = m * o[d] * sigmoid(o[d]);
        }
    }
    return 0;
}

int conv_backward(long batch, long length, long channels, long kernel, const float *x,
                  const float *w_t, const float *bias, const float *mask,
                  const float *grad_out, float *grad_x, float *grad_w_t, float *grad_bias) {
    int failed = 0;
#pragma omp parallel
    {
        float *grad_pre = malloc(sizeof(float) * length * channels);
        if (!grad_pre) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static) reduction(+ : grad_w_t[:kernel * channels], grad_bias[:channels])
        for (long i = 0; i < batch; i++) {
            if (!grad_pre) continue;
            const float *xi = x + i * length * channels, *gi = grad_out + i * length * channels;
            float *gxi = grad_x + i * length * channels;
            for (long t = 0; t < length; t++) {
                float *gp = grad_pre + t * channels;
                float m = mask ? mask[i * length + t] : 1.0f;
                conv_row(t, channels, kernel, xi, w_t, bias, gp); /* pre-activation first */
                for (long d = 0; d < channels; d++) {
                    float s = sigmoid(gp[d]);
                    gp[d] = m * gi[t * channels + d] * silu_grad(gp[d], s);
                    grad_bias[d] += gp[d];
                }
            }
            memset(gxi, 0, sizeof(float) * length * channels);
            for (long t = 0; t < length; t++) {
                const float *gp = grad_pre + t * channels;
                for (long j = 0; j < kernel; j++) {
                    long source = t - (kernel - 1) + j;
                    if (source < 0) continue;
                    const float *xs = xi + source * channels, *wj = w_t + j * channels;
                    float *gxs = gxi + source * channels, *gwj = grad_w_t + j * channels;
                    for (long d = 0; d < channels; d++) {
                        gxs[d] += wj[d] * gp[d];
                        gwj[d] += gp[d] * xs[d];
                    }
                }
            }
        }
        free(grad_pre);
    }
    return failed;
}
