# One image for the bot and the GPU worker. The worker reaches an NVIDIA GPU through Vulkan (WebGPU
# via Dawn): libvulkan1 here, the driver's ICD from the NVIDIA container runtime
# (NVIDIA_DRIVER_CAPABILITIES must include "graphics").
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvulkan1 python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
ENV FACESTYLE_DATA_DIR=/data NODE_ENV=production
VOLUME ["/data", "/app/checkpoints"]
ENTRYPOINT ["node", "bin/facestyle.js"]
CMD ["start"]
